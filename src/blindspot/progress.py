"""Progress where the user looks. A job's full output (progress bars, library warnings) goes to its log file; the
console gets one short line when the job starts, a progress line at most every :data:`INTERVAL_S` seconds of a
long loop (done/total, rate, time left), and the job's one-line summary or error. Under ``snakemake`` the console
is Snakemake's own: ``tail -f results/logs/<stage>/<wildcards>.log`` follows a job in full.
"""

from __future__ import annotations

import time
from typing import IO, Any

from tqdm import tqdm

INTERVAL_S = 30.0
"""Seconds between two console progress lines of one loop (the first comes after one interval)."""

_console: IO[str] | None = None


def set_console(stream: IO[str] | None) -> None:
    """Where the short lines go (the CLI sets it when it sends the job's output to its log)."""
    global _console
    _console = stream


def say(line: str) -> None:
    """One short line on the console (nothing where the job's output is the console itself)."""
    if _console is not None:
        _console.write(line.rstrip("\n")[:300] + "\n")
        _console.flush()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Bar(tqdm):
    """A progress bar (to the log) that also says on the console, every :data:`INTERVAL_S` seconds, how far its
    loop is, how fast it goes and how long it has left."""

    def __init__(self, *args: Any, interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started = time.monotonic()
        self._interval = INTERVAL_S if interval is None else interval
        self._next = self._started + self._interval
        self._done = 0.0

    def update(self, n: float | None = 1) -> None:
        self._done += n or 0
        now = time.monotonic()
        if _console is not None and now >= self._next:
            self._next = now + self._interval
            say(self.line(now))
        super().update(n)

    def line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        unit = self.unit or "it"
        text = f"{self.desc}: {self._done:.0f}"
        if self.total:
            text += f"/{self.total:.0f} {unit}s ({100 * self._done / self.total:.0f}%)"
        else:
            text += f" {unit}s"
        text += f", {rate:.2f} {unit}/s"
        if self.total and rate > 0:
            text += f", about {_duration((self.total - self._done) / rate)} left"
        return text
