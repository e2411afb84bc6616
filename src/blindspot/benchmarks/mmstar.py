"""MMStar (``Lin-Chen/MMStar``, split ``val``): four-way multiple choice chosen to need the image.

The options are inside the question ("Options: A: ..., B: ..."); they are read out for parsing and scoring,
and the prompt is the question as published plus lmms-eval's letter instruction. Official scores: accuracy
overall and per category.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from blindspot.benchmarks.official import OfficialInput, Scores, accuracy_by
from blindspot.benchmarks.published import (
    MC_INSTRUCTION,
    PublishedBenchmark,
    guarded_rows,
    inline_choice_item,
    item_meta,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject

COLUMNS = ("index", "question", "answer", "category", "l2_category", "image")


class MMStar(PublishedBenchmark):
    adapter: Literal["mmstar"] = "mmstar"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "val"


def read_mmstar(config: MMStar) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, mmstar_item)


def mmstar_item(config: MMStar, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    return inline_choice_item(index, str(row["index"]), row["question"], row["answer"], row["image"],
                              category=row["category"], l2_category=row["l2_category"],
                              published_question=row["question"])  # fmt: skip


def mmstar_prompt(item: Item, version: str) -> str:
    return f"{item_meta(item)['published_question']}\n{MC_INSTRUCTION}"


def mmstar_scores(data: OfficialInput) -> Scores:
    return accuracy_by(data, "category")


MMSTAR = register(
    BenchmarkSpec(
        name="mmstar",
        config=MMStar,
        description="MMStar: four-way multiple choice selected to need the image (options in the question).",
        read=read_mmstar,
        prompt=mmstar_prompt,
        official=mmstar_scores,
        items=1500,  # the published size, for shards: auto
        source="Lin-Chen/MMStar (split val)",
        columns=COLUMNS,
    )
)
