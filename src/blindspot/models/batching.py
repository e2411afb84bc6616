"""Batches that waste little and fit memory: length buckets and an automatic batch size.

- **Length buckets.** A batch is left-padded to its longest prompt, so a batch that mixes short and long prompts
  spends most of its compute on padding. :func:`bucket_order` orders a run of units by their estimated prompt
  length (stable: units of equal length keep their order, so one item's conditions stay together and its image
  chunk is read once); cutting that order every ``batch_size`` units gives batches of similar length. Callers put
  the answers back in the original order, so outputs do not depend on it.
- **Automatic batch size.** ``models.<name>.batch_size: auto`` starts at :data:`AUTO_START` (by device) and
  halves whenever a batch runs out of GPU memory, retrying the same units; the size that fits is kept for the
  rest of the job and reported. A fixed ``batch_size`` that runs out of memory is a one-line error naming the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import torch

from blindspot.errors import BlindspotError

T = TypeVar("T")
R = TypeVar("R")

AUTO_START = {"cuda": 64, "cpu": 8}
"""Where ``batch_size: auto`` starts, by device type."""


class BatchMemoryError(BlindspotError):
    """A batch does not fit the device's memory at the configured size."""


def bucket_order(lengths: Sequence[float]) -> list[int]:
    """Positions ordered by length, ties in their original order (a stable sort)."""
    return sorted(range(len(lengths)), key=lambda i: (lengths[i], i))


def is_out_of_memory(error: RuntimeError) -> bool:
    """torch's own out-of-memory error, or a backend's RuntimeError that says so."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


@dataclass
class BatchSizer:
    """The batch size of one job: fixed, or ``auto`` (halved on out-of-memory until a batch fits)."""

    configured: int | Literal["auto"]
    device_type: str = "cpu"
    size: int = 0
    halvings: list[int] = field(default_factory=list)
    """Sizes that ran out of memory, in order."""
    key: str = "model.batch_size"
    """The config key an out-of-memory error names (a swap job's model is its pair's base)."""

    def __post_init__(self) -> None:
        if self.size == 0:
            self.size = AUTO_START.get(self.device_type, 8) if self.configured == "auto" else int(self.configured)

    @property
    def auto(self) -> bool:
        return self.configured == "auto"

    def run(self, units: Sequence[T], fn: Callable[[list[T]], list[R]]) -> list[R]:
        """``fn`` over ``units`` in pieces of at most :attr:`size`; an out-of-memory piece is retried smaller."""
        out: list[R] = []
        start = 0
        while start < len(units):
            piece = list(units[start : start + self.size])
            try:
                out += fn(piece)
            except RuntimeError as error:  # torch.OutOfMemoryError is one
                if not is_out_of_memory(error):
                    raise
                self._shrink(len(piece))
                continue
            start += len(piece)
        return out

    def _shrink(self, failed: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if not self.auto:
            raise BatchMemoryError(
                f"a batch of {failed} ran out of memory; lower it or set batch_size: auto", key=self.key
            )
        if failed <= 1:
            raise BatchMemoryError("one unit alone does not fit in memory", key=self.key)
        self.halvings.append(failed)
        self.size = failed // 2

    def report(self, job: str) -> None:
        """Print :meth:`note` on the job's console (nothing for a fixed size)."""
        if note := self.note():
            print(f"{job}: {note}", flush=True)

    def note(self) -> str | None:
        """What ``auto`` settled on, for the job's console line (None for a fixed size)."""
        if not self.auto:
            return None
        tried = ", ".join(str(s) for s in self.halvings)
        return f"batch_size auto: {self.size}" + (f" ({tried} ran out of memory)" if tried else "")
