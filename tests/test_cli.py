"""The command line: one-line errors for user mistakes, and a SIGKILLed job leaves nothing that looks complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import generic_entry, slice_json, stage_entry

from blindspot.cli import main
from blindspot.fixtures import write_shapes_benchmark
from blindspot.stages.table import STAGES

STAGE_OUTPUTS = ["--item-table", "i.parquet", "--images", "m.parquet", "--rejects", "r.parquet"]


def test_stage_cli_stages_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=5)
    out = [str(tmp_path / "out" / f) for f in ("items.parquet", "images.parquet", "rejects.parquet")]
    text = slice_json("stage", benchmark=generic_entry(path))
    args = ["--item-table", out[0], "--images", out[1], "--rejects", out[2]]
    assert main(["stage", "--bench", "b", "--slice", text, *args]) == 0
    assert all(Path(p).is_file() for p in out)
    out = capsys.readouterr().out
    assert "staged b: 5 items, 5 images, 3 rejects (bad_image=1, missing_answer=1, missing_question=1)" in out


def test_bad_slice_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = '{"output_version": 1, "render": {}, "seed": "x"}'
    assert main(["render", "--bench", "b", "--images", "x", "--slice", bad, "--store", "y"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("blindspot render: error: seed: Input should be a valid integer")


def test_slice_from_another_output_version_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    old = '{"output_version": 0, "render": {}, "seed": 0}'
    assert main(["render", "--bench", "b", "--images", "x", "--slice", old, "--store", "y"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"built for output version 0, but this blindspot writes version {STAGES['render'].version}" in line


def test_wrong_column_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=3)
    entry = generic_entry(path, columns={"question": "prompt"})
    text = slice_json("stage", benchmark=entry)
    assert main(["stage", "--bench", "mmstar", "--slice", text, *STAGE_OUTPUTS]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("blindspot stage: error: benchmarks.mmstar.columns.question: column 'prompt' is not in")


def test_missing_staged_images_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = slice_json("render", render={}, seed=0)
    assert (
        main(["render", "--bench", "b", "--images", str(tmp_path / "no.parquet"), "--slice", text, "--store", "o"]) == 2
    )
    assert "run the stage step first" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_during_render_leaves_no_final_store(tmp_path: Path) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=60, bad_rows=False)
    stage_entry("b", generic_entry(path), tmp_path / "staged")
    text = slice_json("render", render={}, seed=0)
    out = tmp_path / "render" / "b.zarr"
    command = [
        sys.executable,
        "-m",
        "blindspot",
        "render",
        "--bench",
        "b",
        "--images",
        str(tmp_path / "staged" / "images.parquet"),
        "--slice",
        text,
        "--store",
        str(out),
        "--threads",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((tmp_path / "render").glob(".b.zarr.tmp-*/pixels/c")):
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists(), "a killed render left a store at the final path"
    assert list((tmp_path / "render").glob(".b.zarr.tmp-*")), "the test did not kill the job mid-write"


def test_a_bad_slice_value_names_the_users_config_key(capsys: pytest.CaptureFixture[str]) -> None:
    bad = slice_json("predict", model={"adapter": "qwen2_5_vl", "path": "m"}, predict={}, prompt={})
    bad = bad.replace('"batch_size":8', '"batch_size":0')
    args = ["--item-table", "i", "--render", "r", "--predictions", "p"]
    assert main(["predict", "--model", "qwen", "--bench", "b", "--slice", bad, *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        line == "blindspot predict: error: models.qwen.batch_size: a batch size is a positive integer or auto (got 0)"
    )
