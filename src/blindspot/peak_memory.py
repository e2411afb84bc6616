"""This process's peak resident memory, measured so that a child process reports its own peak only."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB.

    On Linux this is ``VmHWM``, the high-water mark of the address space ``exec`` gave the process. ``ru_maxrss``
    is not: Linux carries the parent's peak across fork and exec, so a child started from a large process (a test
    session, a benchmark holding a model) reports at least the parent's peak. Elsewhere ``ru_maxrss`` is the best
    there is (kilobytes on Linux, bytes on macOS)."""
    if STATUS.exists():
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024
