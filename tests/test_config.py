"""Config validation: every problem is one line naming the dotted key, before any job starts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import REPO, generic_entry

from blindspot.cli import main
from blindspot.config import ConfigError, check_paths, json_schema, load_config, parse_config, path_problems


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value).splitlines()


def test_default_config_is_valid_after_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from blindspot.toy.items import write_toy_benchmark

    monkeypatch.chdir(tmp_path)
    write_toy_benchmark("data/toy", 8, {"fine": 0.5, "conflict": 0.5}, seed=0)
    (tmp_path / "src").symlink_to(REPO / "src")  # the committed toy checkpoints
    config = load_config(REPO / "config" / "config.yaml")
    assert sorted(config.benchmarks) == ["toy"]
    assert len(config.models) == 5 and config.toy is not None
    assert set(config.toy.models) | set(config.toy.lens_models) == set(config.models)
    assert config.render.blur.kernels == [1, 9, 17, 25, 35, 43, 51, 61]


def test_missing_path_names_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    config = parse_config({"benchmarks": {"mmstar": generic_entry(missing)}})  # the shape is fine
    assert path_problems(config) == [f"benchmarks.mmstar.path: no such file or directory '{missing}'"]
    with pytest.raises(ConfigError, match=r"^benchmarks.mmstar.path: no such file or directory"):
        check_paths(config)


def test_missing_image_root_directory(shapes_parquet: Path, tmp_path: Path) -> None:
    config = parse_config({"benchmarks": {"b": generic_entry(shapes_parquet, image_root=str(tmp_path / "imgs"))}})
    assert path_problems(config) == [f"benchmarks.b.image_root: no such directory '{tmp_path / 'imgs'}'"]


def test_missing_model_directory_names_the_key_and_the_fetch_command(shapes_parquet: Path, tmp_path: Path) -> None:
    model = {"adapter": "qwen2_5_vl", "path": str(tmp_path / "qwen7b"), "hub_id": "Qwen/Qwen2.5-VL-7B-Instruct"}
    config = parse_config({"benchmarks": {"b": generic_entry(shapes_parquet)}, "models": {"q": model}})
    assert path_problems(config) == [
        f"models.q.path: no such model directory '{tmp_path / 'qwen7b'}'; fetch it with: hf download "
        f"Qwen/Qwen2.5-VL-7B-Instruct --local-dir {tmp_path / 'qwen7b'}"
    ]


def test_unknown_key_suggests_the_close_match(shapes_parquet: Path) -> None:
    entry = generic_entry(shapes_parquet)
    entry["colums"] = entry.pop("columns")
    (line,) = errors_of({"benchmarks": {"b": entry}})
    assert line.startswith("benchmarks.b.colums: unknown key; did you mean 'columns'?")
    (line,) = errors_of({"benchmarks": {"b": generic_entry(shapes_parquet)}, "rendr": {}})
    assert line.startswith("rendr: unknown key; did you mean 'render'?")


def test_wrong_type_and_bad_values_each_get_a_line(shapes_parquet: Path) -> None:
    lines = errors_of(
        {
            "benchmarks": {"b": generic_entry(shapes_parquet, answer_type="essay")},
            "render": {"resize": {"longest_side": "big"}, "blur": {"kernels": [1, 4, 9]}},
        }
    )
    assert len(lines) == 3
    assert lines[0].startswith("benchmarks.b.answer_type: Input should be")
    assert "render.resize.longest_side: Input should be a valid integer" in lines[1]
    assert lines[2] == "render.blur.kernels: kernel sizes must be odd and positive, got 4"


@pytest.mark.parametrize(
    ("kernels", "message"),
    [
        ([3, 9], "level 0 must be kernel 1 (the clean image), got 3"),
        ([1, 9, 9], "kernel sizes must be strictly increasing"),
    ],
)
def test_blur_ladder_rules(shapes_parquet: Path, kernels: list[int], message: str) -> None:
    (line,) = errors_of({"benchmarks": {"b": generic_entry(shapes_parquet)}, "render": {"blur": {"kernels": kernels}}})
    assert line == f"render.blur.kernels: {message}"


def test_adapter_is_required_and_checked(shapes_parquet: Path) -> None:
    entry = generic_entry(shapes_parquet)
    del entry["adapter"]
    assert errors_of({"benchmarks": {"b": entry}}) == ["benchmarks.b.adapter: required key is missing"]
    (line,) = errors_of({"benchmarks": {"b": {**entry, "adapter": "nope"}}})
    assert line.startswith("benchmarks.b.adapter: unknown value 'nope'")


def test_benchmark_names_must_be_wildcard_safe(shapes_parquet: Path) -> None:
    (line,) = errors_of({"benchmarks": {"my bench": generic_entry(shapes_parquet)}})
    assert line.startswith("benchmarks: name 'my bench' must match")
    (line,) = errors_of({"benchmarks": {"bench\n": generic_entry(shapes_parquet)}})  # a trailing newline too
    assert line.startswith("benchmarks: name 'bench\\n' must match") and "\n" not in line
    lines = errors_of(
        {"benchmarks": {"b": generic_entry(shapes_parquet)}, "models": {"m\n": {"adapter": "auto", "path": "x"}}}
    )
    assert any(line.startswith("models: name 'm\\n' must match") for line in lines), lines


def test_a_key_written_twice_is_an_error(tmp_path: Path, shapes_parquet: Path) -> None:
    """PyYAML keeps the last copy of a key; an edit to the first would silently do nothing."""
    path = tmp_path / "twice.yaml"
    text = "seed: 1\ndecay:\n  bootstrap: 100\n  bootstrap: 200\n"
    path.write_text(text + yaml.safe_dump({"benchmarks": {"b": generic_entry(shapes_parquet)}}))
    with pytest.raises(ConfigError, match=r"key 'bootstrap' appears twice in one mapping \(lines 3 and 4\)"):
        load_config(path)
    path.write_text(
        text.replace("  bootstrap: 200\n", "") + yaml.safe_dump({"benchmarks": {"b": generic_entry(shapes_parquet)}})
    )
    assert load_config(path).decay.bootstrap == 100


@pytest.mark.parametrize(
    ("section", "value", "key"),
    [({"seed": "3"}, None, "seed"), ({"decay": {"bootstrap": "200"}}, None, "decay.bootstrap"),
     ({"predict": {"shard_size": 1.5}}, None, "predict.shard_size")],
)  # fmt: skip
def test_integers_are_not_strings(shapes_parquet: Path, section: dict, value: None, key: str) -> None:
    (line,) = errors_of({"benchmarks": {"b": generic_entry(shapes_parquet)}, **section})
    assert line.startswith(f"{key}: "), line


def test_no_benchmarks_is_an_error() -> None:
    assert errors_of({}) == ["benchmarks: required key is missing"]


def test_yaml_problems_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^<config>: '.*bad.yaml' is not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


def test_cli_check_config_prints_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"benchmarks": {"mmstar": generic_entry(tmp_path / "x")}}))
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"blindspot check-config: error: benchmarks.mmstar.path: no such file or directory '{tmp_path / 'x'}'"
    ]
    # The shape alone (a submit node that cannot see the data): the same file passes.
    assert main(["check-config", "--no-paths", str(config)]) == 0
    assert "shape only; paths not checked" in capsys.readouterr().out


def test_exported_schema_is_current_and_validates_configs(shapes_parquet: Path) -> None:
    committed = json.loads((REPO / "workflow" / "schemas" / "config.schema.json").read_text())
    assert committed == json_schema(), "run `make schema` to refresh workflow/schemas/config.schema.json"
    good = {"benchmarks": {"b": generic_entry(shapes_parquet)}}
    jsonschema.validate(good, committed)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"benchmarks": {"b": {**generic_entry(shapes_parquet), "bogus": 1}}}, committed)


def test_config_is_immutable(shapes_parquet: Path) -> None:
    config = parse_config({"benchmarks": {"b": generic_entry(shapes_parquet)}})
    with pytest.raises(Exception, match="frozen"):
        config.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("results", ["/", "..", ".", "~", "~/results", "../..", "results/../..", "./"])
def test_the_results_folder_is_a_folder_of_this_run(shapes_parquet: Path, results: str) -> None:
    (line,) = errors_of({"benchmarks": {"s": generic_entry(shapes_parquet)}, "results": results})
    assert line.startswith("results: ") and "is not a folder of this run" in line


def test_a_results_path_that_is_a_file_or_leads_to_a_parent_is_refused_in_one_line(
    tmp_path: Path, shapes_parquet: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "up").symlink_to(tmp_path.parent)
    for results, expected in (("taken", "is an existing file"), ("up", "the working directory or a parent")):
        config = tmp_path / f"{results}.yaml"
        config.write_text(yaml.safe_dump({"benchmarks": {"s": generic_entry(shapes_parquet)}, "results": results}))
        assert main(["check-config", "--no-paths", str(config)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert f"results: '{results}'" in line and expected in line
    fine = tmp_path / "fine.yaml"
    fine.write_text(yaml.safe_dump({"benchmarks": {"s": generic_entry(shapes_parquet)}, "results": "../sibling"}))
    assert main(["check-config", "--no-paths", str(fine)]) == 2  # '..' is refused even towards a sibling
