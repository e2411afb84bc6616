"""V* Bench (``lmms-lab/vstar-bench``, split ``test``): multiple choice about small details of large images.

The published ``text`` holds the question, its options as "(A) ..." lines and the answer instruction; it is
the prompt as published. The options are read from it for parsing and scoring. Official scores: accuracy
overall and per category (direct attributes, relative position).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from blindspot.benchmarks.official import OfficialInput, Scores, accuracy_by
from blindspot.benchmarks.published import (
    PublishedBenchmark,
    guarded_rows,
    inline_choice_item,
    item_meta,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject

COLUMNS = ("image", "text", "label", "category")


class VStar(PublishedBenchmark):
    adapter: Literal["vstar"] = "vstar"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "test"


def read_vstar(config: VStar) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, vstar_item)


def vstar_item(config: VStar, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    item_id = str(row["question_id"]) if row.get("question_id") is not None else None
    return inline_choice_item(index, item_id, row["text"], row["label"], row["image"], category=row["category"],
                              published_prompt=row["text"])  # fmt: skip


def vstar_prompt(item: Item, version: str) -> str:
    return str(item_meta(item)["published_prompt"])


def vstar_scores(data: OfficialInput) -> Scores:
    return accuracy_by(data, "category")


VSTAR = register(
    BenchmarkSpec(
        name="vstar",
        config=VStar,
        description="V* Bench: multiple choice on small details of high-resolution images.",
        read=read_vstar,
        prompt=vstar_prompt,
        official=vstar_scores,
        items=191,  # the published size, for shards: auto
        source="lmms-lab/vstar-bench (split test)",
        columns=(*COLUMNS, "question_id"),
    )
)
