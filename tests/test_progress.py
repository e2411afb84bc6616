"""Progress where the user looks: a job's output goes to its log, the console gets its start, a progress line at
an interval (done/total, rate, time left) and its one-line result; trial runs from the command line."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from blindspot import progress
from blindspot.config import parse_config, with_command_line_types


def test_a_long_loop_says_how_far_it_is_on_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    console = io.StringIO()
    monkeypatch.setattr(progress, "_console", console)
    clock = iter([0.0, 10.0, 20.0, 31.0, 40.0, 62.0, 70.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = progress.Bar(total=100, desc="predict qwen/toy", unit="unit", interval=30.0, file=io.StringIO())
    for _ in range(6):
        bar.update(10)
    lines = console.getvalue().splitlines()
    assert lines == [
        "predict qwen/toy: 30/100 units (30%), 0.97 unit/s, about 72 s left",
        "predict qwen/toy: 50/100 units (50%), 0.81 unit/s, about 62 s left",
    ]


def test_without_a_console_nothing_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "_console", None)
    bar = progress.Bar(total=3, interval=0.0, file=io.StringIO())
    bar.update(3)  # no error, nothing printed anywhere but the bar's own file
    progress.say("nothing")


def test_a_job_with_a_log_puts_its_output_there_and_short_lines_on_the_console(tmp_path: Path) -> None:
    """The stage command with --log: its summary on the console (and in the log); its error in one line too."""
    source = tmp_path / "b.jsonl"
    source.write_text('{"question": "q?", "answer": "yes", "image": "missing.png"}\n')
    slice_json = (
        '{"output_version": 2, "benchmark": {"adapter": "generic", "path": "' + str(source) + '", "answer_type": '
        '"yes_no"}, "image_folder": null}'
    )
    log = tmp_path / "logs" / "stage.log"
    command = [sys.executable, "-m", "blindspot", "stage", "--bench", "b", "--slice", slice_json,
               "--item-table", str(tmp_path / "i.parquet"), "--images", str(tmp_path / "im.parquet"),
               "--rejects", str(tmp_path / "r.parquet"), "--log", str(log)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stdout.splitlines() == [f"stage b: started (log: {log})"]
    (error,) = done.stderr.splitlines()
    assert error.startswith("blindspot stage: error: benchmarks.b: no item staged")
    assert error in log.read_text()  # the log has it all


def test_command_line_overrides_are_read_with_their_yaml_types(shapes_parquet: Path) -> None:
    """What Snakemake hands over for --config 'benchmarks={s: {limit: 50}}' 'decay={bootstrap: 200}'."""
    entry = {"adapter": "generic", "path": str(shapes_parquet), "answer_type": "open"}
    overrides = {"benchmarks": {"s": {"limit": "50"}}, "decay": {"bootstrap": "200"}, "results": "results-small"}
    merged = {"benchmarks": {"s": {**entry, "limit": "50"}}, "decay": {"bootstrap": "200"}, "results": "results-small"}
    parsed = parse_config(with_command_line_types(merged, overrides))
    assert parsed.benchmarks["s"].limit == 50 and parsed.decay.bootstrap == 200  # type: ignore[union-attr]
    assert parsed.results == "results-small"
    with pytest.raises(Exception, match=r"decay\.bootstrap"):
        parse_config(merged)  # a YAML file stays strict


@pytest.mark.slow
def test_a_trial_run_from_the_command_line_plans(tmp_path: Path, shapes_parquet: Path) -> None:
    config = tmp_path / "c.yaml"
    entry = {"adapter": "generic", "path": str(shapes_parquet), "answer_type": "open"}
    config.write_text(yaml.safe_dump({"benchmarks": {"s": entry}}))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "-s", str(REPO / "Snakefile"), "--configfile",
         str(config), "--config", "benchmarks={s: {limit: 3}}", "decay={bootstrap: 200}", "results=results-small"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-1500:]
    assert "results-small/staged/s/items.parquet" in done.stdout


def test_the_cli_has_a_version_and_plain_help() -> None:
    version = subprocess.run([sys.executable, "-m", "blindspot", "--version"], capture_output=True, text=True)
    assert version.stdout.strip().startswith("blindspot ")
    shown = subprocess.run([sys.executable, "-m", "blindspot", "--help"], capture_output=True, text=True).stdout
    assert "``" not in shown and ":mod:" not in shown and "models" in shown


def test_blindspot_models_lists_the_model_adapters() -> None:
    from blindspot.models.families import FAMILIES

    shown = subprocess.run([sys.executable, "-m", "blindspot", "models"], capture_output=True, text=True)
    assert shown.returncode == 0
    names = [line.split(":")[0] for line in shown.stdout.splitlines() if line and not line.startswith(" ")]
    assert names == list(FAMILIES) and {"qwen2_5_vl", "llava_next", "auto"} <= set(names)


@pytest.mark.slow
def test_the_first_usage_command_without_the_toy_data_says_how_to_make_it(tmp_path: Path) -> None:
    """A fresh clone has no data/toy: the README's first command says in one line how to make it."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["benchmarks"]["toy"]["path"] = str(tmp_path / "data" / "toy" / "items.parquet")
    for model in config["models"].values():
        model["path"] = str(REPO / model["path"])
    config["results"] = str(tmp_path / "results")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "8", "--resources", "gpu=2", "-s",
         str(REPO / "Snakefile"), "--configfile", str(tmp_path / "c.yaml")],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    (line,) = [s for s in done.stderr.splitlines() if "config error" in s]
    assert "benchmarks.toy.path" in line and "make demo-data" in line
