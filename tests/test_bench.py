"""Every bench/ script runs in its smoke mode (tiny sizes, no timing targets), so a refactor that breaks one fails
`make test` instead of `make bench` weeks later. The figures themselves are `make bench`'s."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_"))  # _cli.py: a helper


def test_make_bench_runs_every_bench_script() -> None:
    target = (REPO / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert SCRIPTS and all(f"bench/{script}" in target for script in SCRIPTS), target


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_the_bench_script_runs_in_smoke_mode(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--smoke"], cwd=REPO / "bench", capture_output=True, text=True
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert done.stdout.strip(), "the script printed nothing"
