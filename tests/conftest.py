"""Shared fixtures: fixture benchmarks written by blindspot.fixtures, and helpers to run the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def shapes_parquet(tmp_path: Path) -> Path:
    from blindspot.fixtures import write_shapes_benchmark

    return write_shapes_benchmark(tmp_path / "shapes", n_items=12, seed=1, fmt="parquet", image_mode="struct")


def generic_entry(path: Path, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "adapter": "generic",
        "path": str(path),
        "answer_type": "multiple_choice",
        "columns": {"id": "question_id", "options": "options"},
    }
    entry.update(overrides)
    return entry


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow in ``workdir`` with ``workdir/config.yaml``; the venv's bin on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
