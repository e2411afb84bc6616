"""The command line: one-line errors for user mistakes, and a SIGKILLed job leaves nothing that looks complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import generic_entry

from blindspot.cli import main
from blindspot.config import GenericBenchmark, RenderConfig
from blindspot.fixtures import write_shapes_benchmark
from blindspot.slices import RenderSlice, StageSlice, to_json
from blindspot.staging.stage import stage_benchmark


def test_stage_cli_stages_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=5)
    slice_json = to_json(StageSlice(benchmark=GenericBenchmark.model_validate(generic_entry(path))))
    assert main(["stage", "--bench", "b", "--slice", slice_json, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "staged b: 5 items, 5 images, 3 rejects (bad_image=1, missing_answer=1, duplicate_id=1)" in out


def test_bad_slice_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "--images", "x", "--slice", '{"render": {}, "seed": "x"}', "--out", "y"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("blindspot render: error: bad render slice: seed: Input should be a valid integer")


def test_wrong_column_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=3)
    entry = generic_entry(path, columns={"question": "prompt"})
    slice_json = to_json(StageSlice(benchmark=GenericBenchmark.model_validate(entry)))
    assert main(["stage", "--bench", "mmstar", "--slice", slice_json, "--out", str(tmp_path / "o")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("blindspot stage: error: benchmarks.mmstar.columns.question: column 'prompt' is not in")


def test_missing_staged_images_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slice_json = to_json(RenderSlice(render=RenderConfig(), seed=0))
    assert main(["render", "--images", str(tmp_path / "no.parquet"), "--slice", slice_json, "--out", "o"]) == 2
    assert "run the stage step first" in capsys.readouterr().err


def test_sigkill_during_render_leaves_no_final_store(tmp_path: Path) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=60, bad_rows=False)
    stage_benchmark("b", GenericBenchmark.model_validate(generic_entry(path)), tmp_path / "staged")
    slice_json = to_json(RenderSlice(render=RenderConfig(), seed=0))
    out = tmp_path / "render" / "b.zarr"
    command = [
        sys.executable,
        "-m",
        "blindspot",
        "render",
        "--images",
        str(tmp_path / "staged" / "images.parquet"),
        "--slice",
        slice_json,
        "--out",
        str(out),
        "--workers",
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
