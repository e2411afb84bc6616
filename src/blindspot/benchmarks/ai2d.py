"""AI2D (``lmms-lab/ai2d``, split ``test``): four-way multiple choice about science diagrams.

Options are a list; the answer is the correct option's 0-based index (as text). The data has no id column, so
item ids are content hashes. Prompt: lmms-eval's (lettered options, the letter instruction).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from blindspot.benchmarks.official import accuracy
from blindspot.benchmarks.published import (
    MC_INSTRUCTION,
    PublishedBenchmark,
    choice_item,
    guarded_rows,
    listed_options,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject
from blindspot.prompts import lettered

COLUMNS = ("question", "options", "answer", "image")


class AI2D(PublishedBenchmark):
    adapter: Literal["ai2d"] = "ai2d"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "test"


def read_ai2d(config: AI2D) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, ai2d_item)


def ai2d_item(config: AI2D, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    options = listed_options(index, None, row["options"])
    if isinstance(options, Reject):
        return options
    return choice_item(index, None, row["question"], options, row["answer"], row["image"], answer_format="index")


def multiple_choice_prompt(item: Item, version: str) -> str:
    """lmms-eval's multiple-choice layout: question, "A. option" lines, the letter instruction."""
    return lettered(item["question"], item["options"], MC_INSTRUCTION)


AI2D_SPEC = register(
    BenchmarkSpec(
        name="ai2d",
        config=AI2D,
        description="AI2D: four-way multiple choice about science diagrams.",
        read=read_ai2d,
        prompt=multiple_choice_prompt,
        official=accuracy,
        items=3088,  # the published size, for shards: auto
        source="lmms-lab/ai2d (split test)",
        columns=COLUMNS,
    )
)
