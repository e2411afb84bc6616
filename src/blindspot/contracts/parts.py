"""How a split job's items are chosen: blocks of items, and parts made of whole blocks.

A model-running stage processes its items in **blocks**: consecutive items, a block closing once it holds its
target size and only where no source image has items on both sides (so the items of one image are never split).
Blocks are the stage's resumable inner shards and the widest batches ever get: a batch never spans two blocks.

A job split ``N`` ways (``shards: N`` for its benchmark) runs one **part**: a contiguous run of whole blocks,
balanced by items. The blocks depend only on the items and the stage's target size, never on ``N``, so every item
is computed in the same batch, whatever ``N`` is, and the gathered output equals the unsplit one: ``N = 1`` is the
single part holding every block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PART_PATTERN = r"[1-9][0-9]*-of-[1-9][0-9]*"
"""A part's label in paths and on the command line: ``2-of-3`` is the second of three."""


@dataclass(frozen=True)
class Part:
    """Part ``index`` (1-based) of ``count``."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"part {self.index} of {self.count}: the index must be between 1 and the count")

    @classmethod
    def parse(cls, label: str) -> Part:
        """``"2-of-3"`` -> ``Part(2, 3)``; anything else is a ValueError naming the expected form."""
        if not re.fullmatch(PART_PATTERN, label):
            raise ValueError(f"part '{label}' is not of the form <k>-of-<n> (e.g. 2-of-3)")
        index, _, count = label.partition("-of-")
        return cls(int(index), int(count))

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"

    @property
    def whole(self) -> bool:
        return self.count == 1

    def take(self, blocks: Sequence[Sequence[int]]) -> list[list[int]]:
        """This part's blocks: block ``j`` (starting after ``s_j`` of ``total`` items) goes to part
        ``floor(s_j * count / total) + 1``, so parts are contiguous and balanced to within one block. A part may
        be empty where ``count`` exceeds the blocks."""
        total = sum(len(block) for block in blocks)
        mine: list[list[int]] = []
        start = 0
        for block in blocks:
            if total and start * self.count // total + 1 == self.index:
                mine.append(list(block))
            start += len(block)
        return mine


def item_blocks(groups: Sequence[str], target: int) -> list[list[int]]:
    """Positions ``0 .. len(groups) - 1`` in blocks of about ``target``: a block closes once it holds ``target``
    positions, at the first position after which no group (source image) continues. Groups whose items are not
    adjacent make their blocks longer, never split them."""
    if target < 1:
        raise ValueError(f"a block holds at least one item, got a target of {target}")
    last = {group: position for position, group in enumerate(groups)}
    blocks: list[list[int]] = []
    current: list[int] = []
    reach = -1  # the last position of any group seen in the current block
    for position, group in enumerate(groups):
        current.append(position)
        reach = max(reach, last[group])
        if len(current) >= target and reach == position:
            blocks.append(current)
            current, reach = [], -1
    if current:
        blocks.append(current)
    return blocks


def part_items(groups: Sequence[str], target: int, part: Part) -> list[list[int]]:
    """The blocks of positions ``part`` runs: :func:`item_blocks` then :meth:`Part.take`."""
    return part.take(item_blocks(groups, target))


WHOLE = Part()
"""The one part of an unsplit job: every item."""
