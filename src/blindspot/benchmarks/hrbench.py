"""HR-Bench (``DreamMr/HR-Bench``): four-way multiple choice on 4K and 8K images.

Each question is asked in several cycles with its options rotated (``cycle_category``); the official score
averages the accuracy of each cycle, for the single-instance questions (``single``), the cross-instance ones
(``cross``) and all (``average``). Images are base64 text. The images are large: give the benchmark its own
working size (``render: {resize: {longest_side: ...}}``) where the global one would lose the detail it tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np

from blindspot.benchmarks.official import OfficialInput, Scores, mean_of_group_means
from blindspot.benchmarks.published import (
    PublishedBenchmark,
    choice_item,
    guarded_rows,
    option_columns,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject
from blindspot.prompts import lettered

COLUMNS = ("index", "image", "question", "A", "B", "C", "D", "answer", "category", "cycle_category")


class HRBench(PublishedBenchmark):
    adapter: Literal["hrbench"] = "hrbench"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "hrbench_4k"
    subset: str | None = "hrbench_version_split"


def read_hrbench(config: HRBench) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, hrbench_item)


def hrbench_item(config: HRBench, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    options = option_columns(row, "ABCDEF")
    return choice_item(index, str(row["index"]), row["question"], options, row["answer"], row["image"],
                       category=row["category"], cycle_category=row["cycle_category"])  # fmt: skip


def hrbench_prompt(item: Item, version: str) -> str:
    """HR-Bench's prompt: the question, "A. option" lines, "Answer the option letter directly." """
    return lettered(item["question"], item["options"], "Answer the option letter directly.")


def hrbench_scores(data: OfficialInput) -> Scores:
    correct = data.array("score")
    cycles = data.meta("cycle_category")
    categories = np.array(data.meta("category"))
    scores = {"average": mean_of_group_means(data.weights, cycles, correct)}
    for category in ("single", "cross"):
        mask = categories == category
        if mask.any():
            kept = [c for c, m in zip(cycles, mask, strict=True) if m]
            scores[category] = mean_of_group_means(data.weights[:, mask], kept, correct[mask])
    return scores


HRBENCH = register(
    BenchmarkSpec(
        name="hrbench",
        config=HRBench,
        description="HR-Bench 4K/8K: multiple choice on high-resolution images, scored per option cycle.",
        read=read_hrbench,
        prompt=hrbench_prompt,
        official=hrbench_scores,
        items=800,  # the published size, for shards: auto
        source="DreamMr/HR-Bench (config hrbench_version_split: hrbench_4k, hrbench_8k)",
        columns=COLUMNS,
    )
)
