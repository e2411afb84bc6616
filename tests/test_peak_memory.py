"""peak_rss_mib reports the calling process's own peak, not the peak of the process that started it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from blindspot.peak_memory import STATUS

CHILD = (
    "import resource; from blindspot.peak_memory import peak_rss_mib; "
    "print(peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def _parent(allocate_mib: int) -> str:
    """A parent that touches ``allocate_mib`` MiB, then starts the child and prints what the child printed."""
    return (
        "import subprocess, sys\n"
        f"block = bytearray({allocate_mib} * 2**20)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        f"print(subprocess.run([sys.executable, '-c', {CHILD!r}], capture_output=True, text=True, check=True).stdout)\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(not STATUS.exists(), reason="the inherited peak is a Linux behaviour")
def test_a_child_of_a_large_process_reports_its_own_peak() -> None:
    done = subprocess.run([sys.executable, "-c", _parent(800)], capture_output=True, text=True, check=True)
    own, inherited = (float(x) for x in done.stdout.split())
    assert inherited >= 800  # the trap: ru_maxrss starts at the parent's peak
    assert own < 300


def test_the_peak_follows_what_the_process_touches() -> None:
    script = (
        "from blindspot.peak_memory import peak_rss_mib\n"
        "before = peak_rss_mib()\n"
        "block = bytearray(400 * 2**20)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "del block\n"
        "print(before, peak_rss_mib())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, after = (float(x) for x in done.stdout.split())
    assert before < 300 and after >= before + 390  # a high-water mark: freed memory still counts
