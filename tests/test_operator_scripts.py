"""The operator's scripts run in CI, so that a change elsewhere cannot leave them broken unnoticed: ``make faults``
(tests/faults.py) ends with every case as expected, and every mutant of ``make mutants`` still applies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from faults import CASES

TESTS = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.extended
def test_make_faults_holds_every_case() -> None:
    done = subprocess.run([sys.executable, "faults.py"], cwd=TESTS, capture_output=True, text=True)
    print(done.stdout)
    names = {case.name for case in CASES}
    rows = [line for line in done.stdout.splitlines() if line[:36].strip() in names]
    assert len(rows) == len(CASES), done.stdout + done.stderr[-2000:]
    assert done.returncode == 0 and f"{len(CASES)} of {len(CASES)} cases as expected" in done.stdout, done.stdout


def test_every_mutant_still_applies() -> None:
    """``make mutants`` (too long for CI) stops at a mutant whose original text the code no longer contains: each
    must occur exactly once in its file, so a refactor that moves it fails here and the mutant is updated with it."""
    from mutants import MUTANTS

    source = TESTS.parent / "src" / "blindspot"
    moved = [m.id for m in MUTANTS if (source / m.file).read_text().count(m.original) != 1]
    assert not moved, f"mutants whose original text is gone or repeated: {moved}"
