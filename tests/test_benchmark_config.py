"""Benchmarks by config alone: a thirteenth benchmark in a schema no adapter knows, the checks that open the data
before any job (check-config --data), ids that are not unique, reject shares, and per-benchmark overrides."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from published_data import BUILDERS, picture

from blindspot.cli import main
from blindspot.config import ConfigError, parse_config
from blindspot.errors import BlindspotError
from blindspot.images import encode_png
from blindspot.prompts import item_text
from blindspot.stages.staging import StageError, stage_benchmark, staged_paths
from blindspot.stages.table import STAGES


def mmvp_like(root: Path) -> Path:
    """A published schema no adapter knows: MMVP-style pairs. Two questions share an `Index` (one per image of a
    pair), the options are inside the question ("(A) Open (B) Closed"), the answer is "(A)", images are files."""
    (root / "images").mkdir(parents=True)
    rows = []
    for pair in range(3):
        for side in range(2):
            name = f"{pair}_{side}.jpg"
            (root / "images" / name).write_bytes(picture(200 + 2 * pair + side))
            question = "Is the door open or closed? (A) Open (B) Closed"
            rows.append({"Index": pair, "Question": question, "Correct Answer": "(A)" if side == 0 else "(B)",
                         "Image": name, "Pair": f"p{pair}"})  # fmt: skip
    source = root / "mmvp.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return source


def thirteenth_entry(root: Path, **columns: object) -> dict[str, object]:
    return {
        "adapter": "generic",
        "path": str(mmvp_like(root)),
        "image_root": str(root / "images"),
        "answer_type": "multiple_choice",
        "options_in_question": True,
        "columns": {
            "id": ["Index", "Image"],
            "question": "Question",
            "answer": "Correct Answer",
            "image": "Image",
            **columns,
        },
    }


def test_a_thirteenth_benchmark_by_config_alone(tmp_path: Path) -> None:
    config = parse_config({"benchmarks": {"mmvp": thirteenth_entry(tmp_path)}}).benchmarks["mmvp"]
    assert config.data_problems() == []
    paths = staged_paths(tmp_path / "staged")
    summary = stage_benchmark("mmvp", config, paths)
    items = pl.read_parquet(paths["item_table"])
    assert summary.items == 6 and summary.rejects == 0
    assert items["item_id"].to_list()[:2] == ["0/0_0.jpg", "0/0_1.jpg"]
    first = items.row(0, named=True)
    assert first["options"] == ["Open", "Closed"] and first["answer"] == "A"
    assert items["answer"].to_list() == ["A", "B"] * 3
    assert item_text(first, "v1") == (
        "Is the door open or closed?\nA. Open\nB. Closed\nAnswer with the option's letter from the given choices "
        "directly."
    )


def test_an_id_column_that_repeats_keys_its_items_by_id_and_question(tmp_path: Path) -> None:
    """MME's question_id is shared by the two questions of an image: the items are keyed <id>/<question>, as the
    old error told the user to write (columns.id: [Index, Question]), and the stage says so."""
    source = tmp_path / "mme.jsonl"
    image = base64.b64encode(encode_png(np.zeros((8, 8, 3), dtype=np.uint8))).decode()
    other = base64.b64encode(encode_png(np.full((8, 8, 3), 200, dtype=np.uint8))).decode()
    asked = (("Is it dark? Please answer yes or no.", "yes"), ("Is it light? Please answer yes or no.", "no"))
    rows = [
        {"question_id": f"{name}.png", "question": q, "answer": a, "image": img}
        for name, img in (("a", image), ("b", other))
        for q, a in asked
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    entry = {"adapter": "generic", "path": str(source), "answer_type": "yes_no", "columns": {"id": "question_id"}}
    config = parse_config({"benchmarks": {"mme": entry}}).benchmarks["mme"]
    paths = staged_paths(tmp_path / "staged")
    summary = stage_benchmark("mme", config, paths)
    items = pl.read_parquet(paths["item_table"])
    assert summary.items == 4 and summary.rejects == 0 and summary.repeated_ids == 2
    assert items["item_id"].to_list() == [f"{r['question_id']}/{r['question']}" for r in rows]
    spelled = {**entry, "columns": {"id": ["question_id", "question"]}}
    written = parse_config({"benchmarks": {"mme": spelled}}).benchmarks["mme"]
    stage_benchmark("mme", written, staged_paths(tmp_path / "written"))
    assert pl.read_parquet(staged_paths(tmp_path / "written")["item_table"])["item_id"].to_list() == (
        items["item_id"].to_list()
    )
    # MMVP asks one question of two images under one index: the first image's key tells them apart
    mmvp = parse_config({"benchmarks": {"mmvp": thirteenth_entry(tmp_path, id="Index")}}).benchmarks["mmvp"]
    mmvp_paths = staged_paths(tmp_path / "mmvp")
    assert stage_benchmark("mmvp", mmvp, mmvp_paths).items == 6
    assert pl.read_parquet(mmvp_paths["item_table"])["item_id"].n_unique() == 6


def test_a_row_whose_id_and_question_both_repeat_is_a_duplicate_reject(tmp_path: Path) -> None:
    source = tmp_path / "dup.jsonl"
    image = base64.b64encode(encode_png(np.zeros((8, 8, 3), dtype=np.uint8))).decode()
    rows = [{"qid": "a.png", "q": "Is it dark?", "gold": "yes", "img": image}] * 2
    rows += [{"qid": "a.png", "q": "Is it light?", "gold": "no", "img": image}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    entry = {"adapter": "generic", "path": str(source), "answer_type": "yes_no",
             "columns": {"id": "qid", "question": "q", "answer": "gold", "image": "img"}}  # fmt: skip
    config = parse_config({"benchmarks": {"d": entry}}).benchmarks["d"]
    paths = staged_paths(tmp_path / "staged")
    summary = stage_benchmark("d", config, paths)
    assert summary.items == 2 and summary.reasons == {"duplicate_id": 1}
    rejects = pl.read_parquet(paths["rejects"])
    assert rejects["source_index"].to_list() == [1]
    assert "repeats row 0" in rejects["message"][0]


def test_a_stage_rejecting_more_than_its_share_fails_loudly(tmp_path: Path) -> None:
    entry = {**thirteenth_entry(tmp_path), "options_in_question": False, "columns": {
        "id": ["Index", "Image"], "question": "Question", "answer": "Correct Answer", "image": "Image",
        "options": "Pair"}}  # fmt: skip
    config = parse_config({"benchmarks": {"mmvp": entry}}).benchmarks["mmvp"]
    with pytest.raises(StageError, match=r"6 of 6 rows rejected|no item staged"):
        stage_benchmark("mmvp", config, staged_paths(tmp_path / "staged"))
    assert not list((tmp_path / "staged").iterdir())  # a refused stage leaves no output, not an images table
    half = BUILDERS["scienceqa"](tmp_path / "sqa")  # 1 of 3 rows has no image: 33%
    strict = parse_config({"benchmarks": {"s": {**half.entry, "max_reject_share": 0.2}}}).benchmarks["s"]
    with pytest.raises(StageError) as caught:
        stage_benchmark("s", strict, staged_paths(tmp_path / "strict"))
    assert str(caught.value).startswith(
        "benchmark.max_reject_share: 1 of 3 rows rejected (33% > max_reject_share 0.2: no_image: 1; first: row 2:"
    )
    assert not list((tmp_path / "strict").iterdir())
    lenient = parse_config({"benchmarks": {"s": half.entry}}).benchmarks["s"]
    assert stage_benchmark("s", lenient, staged_paths(tmp_path / "lenient")).rejects == 1


def test_check_config_data_reports_columns_before_any_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ai2d = BUILDERS["ai2d"](tmp_path / "ai2d")
    source = tmp_path / "t.parquet"
    pl.DataFrame({"qid": ["1"], "prompt": ["q?"], "gold": ["A"], "img": [b"x"]}).write_parquet(source)
    config = {
        "benchmarks": {
            "ok": ai2d.entry,
            "typo": {"adapter": "generic", "path": str(source), "answer_type": "open",
                     "columns": {"question": "question", "answer": "gold", "image": "img"}},
            "no_options": {"adapter": "generic", "path": str(source), "answer_type": "multiple_choice",
                           "columns": {"question": "prompt", "answer": "gold", "image": "img"}},
            "wrong_split": {**ai2d.entry, "split": "validation"},
        }
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))  # keys sorted: the problems come in name order
    assert main(["check-config", str(path)]) == 0  # without --data, the sources are not opened
    capsys.readouterr()
    assert main(["check-config", str(path), "--data"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert sorted(lines) == [
        "blindspot check-config: error: benchmarks.no_options.columns.options: answer_type multiple_choice needs "
        "its options: map columns.options, or set options_in_question (columns: qid, prompt, gold, img)",
        "blindspot check-config: error: benchmarks.typo.columns.question: column 'question' is not in "
        f"'{source}' (columns: qid, prompt, gold, img)",
        "blindspot check-config: error: benchmarks.wrong_split.split: no parquet shards of split 'validation' "
        f"under '{tmp_path / 'ai2d'}' (shards found: test); set `split`",
    ]


def test_render_and_probe_settings_per_benchmark() -> None:
    config = parse_config(
        {
            "benchmarks": {
                "hr": {"adapter": "hrbench", "path": "x", "render": {"resize": {"longest_side": 1344}},
                       "probe": {"metadata_targets": ["category"]}},
                "plain": {"adapter": "ai2d", "path": "y"},
            },
            "render": {"resize": {"longest_side": 448}, "blur": {"kernels": [1, 9]}},
            "probe": {"metadata_targets": ["colour"]},
        }
    )  # fmt: skip
    hr = STAGES["render"].build_slice(config, {"bench": "hr"})
    plain = STAGES["render"].build_slice(config, {"bench": "plain"})
    assert hr.render.resize.longest_side == 1344 and hr.render.blur.kernels == [1, 9]  # merged, not replaced
    assert plain.render.resize.longest_side == 448
    assert STAGES["probe"].build_slice(config, {"model": "m", "bench": "hr"}).probe.metadata_targets == ["category"]
    assert STAGES["probe"].build_slice(config, {"model": "m", "bench": "plain"}).probe.metadata_targets == ["colour"]
    with pytest.raises(ConfigError, match=r"benchmarks\.hr\.probe: 'epochs' cannot be set per benchmark"):
        parse_config({"benchmarks": {"hr": {"adapter": "hrbench", "path": "x", "probe": {"epochs": 3}}}})
    with pytest.raises(ConfigError, match=r"benchmarks\.hr\.render: "):
        parse_config({"benchmarks": {"hr": {"adapter": "hrbench", "path": "x", "render": {"resize": {"longest": 3}}}}})


def test_adapters_lists_every_registered_benchmark_with_its_columns(capsys: pytest.CaptureFixture[str]) -> None:
    from blindspot.benchmarks import registered

    assert main(["adapters"]) == 0
    out = capsys.readouterr().out
    names = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == [spec.name for spec in registered()]
    published = {"repope", "hrbench", "hallusionbench", "vstar", "vlmbias", "mmmu", "ai2d", "mmstar", "mmbench",
                 "scienceqa", "cvbench", "textvqa"}  # fmt: skip
    assert published | {"pope", "generic"} <= set(names)  # a benchmark added later is listed too
    block = out.split("hallusionbench:")[1].split("\nhrbench:")[0]
    assert "source:  lmms-lab/HallusionBench (split image)" in block
    assert "columns: category, subcategory, set_id, figure_id, question_id, question, gt_answer, image" in block
    assert "config:  split: image" in block


def nested_source(tmp_path: Path) -> Path:
    """Three rows with an image (bytes) and a nested column (a struct with a list), in parquet."""
    source = tmp_path / "nested.parquet"
    image = encode_png(np.zeros((8, 8, 3), dtype=np.uint8))
    rows = [{"qid": str(i), "q": f"Is it dark {i}?", "gold": "yes", "img": image, "info": {"cat": "c", "tags": [i]}}
            for i in range(3)]  # fmt: skip
    pl.DataFrame(rows).write_parquet(source)
    return source


def test_a_listed_metadata_column_is_never_dropped(tmp_path: Path) -> None:
    """A nested column listed under columns.metadata is kept, as JSON; a listed column with binary data, or one
    the source does not have, is refused in one line naming columns.metadata."""
    columns = {"id": "qid", "question": "q", "answer": "gold", "image": "img", "metadata": ["info"]}
    entry = {"adapter": "generic", "path": str(nested_source(tmp_path)), "answer_type": "yes_no", "columns": columns}
    config = parse_config({"benchmarks": {"n": entry}}).benchmarks["n"]
    paths = staged_paths(tmp_path / "staged")
    stage_benchmark("n", config, paths)
    metadata = [json.loads(m) for m in pl.read_parquet(paths["item_table"])["metadata"]]
    assert metadata[2] == {"info": {"cat": "c", "tags": [2]}}
    for listed, message in ((["info", "img"], "column 'img' holds binary data"), (["nope"], "column 'nope' is not")):
        bad = parse_config({"benchmarks": {"n": {**entry, "columns": {**columns, "metadata": listed}}}}).benchmarks["n"]
        with pytest.raises(BlindspotError) as caught:
            stage_benchmark("n", bad, staged_paths(tmp_path / f"bad-{listed[-1]}"))
        assert str(caught.value).startswith("benchmark.columns.metadata: " + message)
        assert "\n" not in str(caught.value)
    default = parse_config({"benchmarks": {"n": {**entry, "columns": {**columns, "metadata": None}}}}).benchmarks["n"]
    stage_benchmark("n", default, staged_paths(tmp_path / "default"))
    kept = json.loads(pl.read_parquet(staged_paths(tmp_path / "default")["item_table"])["metadata"][0])
    assert kept == {"info": {"cat": "c", "tags": [0]}}  # by default too: nested kept, the image left out


def test_official_pairs_reach_the_decay_slice_and_only_it(tmp_path: Path) -> None:
    columns = {"id": "qid", "question": "q", "answer": "gold", "image": "img"}
    entry = {"adapter": "generic", "path": str(nested_source(tmp_path)), "answer_type": "yes_no", "columns": columns}
    model = {"q": {"adapter": "qwen2_5_vl", "path": "src/blindspot/toy/checkpoints/qwen_base"}}
    plain = parse_config({"benchmarks": {"n": entry}, "models": model})
    paired = parse_config({"benchmarks": {"n": {**entry, "official": {"group_by": "image"}}}, "models": model})
    wildcards = {"model": sorted(plain.models)[0], "bench": "n"}
    changed = [name for name, stage in STAGES.items() if set(stage.wildcards) <= {"model", "bench"} and
               stage.slice_json(plain, {k: v for k, v in wildcards.items() if k in stage.wildcards}) !=
               stage.slice_json(paired, {k: v for k, v in wildcards.items() if k in stage.wildcards})]  # fmt: skip
    assert changed == ["decay"]
    assert json.loads(STAGES["decay"].slice_json(paired, wildcards))["official"]["group_by"] == "image"
