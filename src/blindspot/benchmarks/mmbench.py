"""MMBench (``lmms-lab/MMBench``, config ``en``, split ``dev``): two- to four-way multiple choice.

Options are columns ``A`` to ``D`` (empty where an item has fewer); a ``hint`` is shown before the question, as
lmms-eval does. Circular evaluation: the full release repeats each question with its options rotated, the copies'
``index`` differing by multiples of 1,000,000; a question counts as right only when every copy is. Official
scores: accuracy, and circular accuracy where the data has the copies. The bootstrap keeps copies together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np

from blindspot.benchmarks.official import OfficialInput, Scores, all_correct_rate, weighted_mean
from blindspot.benchmarks.published import (
    MC_INSTRUCTION,
    PublishedBenchmark,
    choice_item,
    guarded_rows,
    item_meta,
    option_columns,
    text_or_none,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject
from blindspot.prompts import lettered

COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image")
CIRCULAR_STRIDE = 1_000_000


class MMBench(PublishedBenchmark):
    adapter: Literal["mmbench"] = "mmbench"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "dev"
    subset: str | None = "en"


def read_mmbench(config: MMBench) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, mmbench_item)


def mmbench_item(config: MMBench, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    extra: dict[str, Any] = {k: row.get(k) for k in ("l2-category", "source", "split") if k in row}
    return choice_item(index, str(row["index"]), row["question"], option_columns(row, "ABCD"), row["answer"],
                       row["image"], hint=text_or_none(row.get("hint")), category=row["category"],
                       circular_group=int(row["index"]) % CIRCULAR_STRIDE, **extra)  # fmt: skip


def mmbench_prompt(item: Item, version: str) -> str:
    hint = item_meta(item).get("hint")
    question = f"{hint}\n{item['question']}" if hint else item["question"]
    return lettered(question, item["options"], MC_INSTRUCTION)


def mmbench_scores(data: OfficialInput) -> Scores:
    correct = data.array("score")
    groups = data.meta("circular_group")
    scores = {"accuracy": weighted_mean(data.weights, correct)}
    counts = Counter(groups)
    circular = np.array([counts[g] > 1 for g in groups])
    if circular.any():
        kept = [g for g, c in zip(groups, circular, strict=True) if c]
        scores["circular_accuracy"] = all_correct_rate(data.weights[:, circular], kept, correct[circular])
    return scores


def circular_group(item: Item) -> str:
    return str(item_meta(item)["circular_group"])


MMBENCH = register(
    BenchmarkSpec(
        name="mmbench",
        config=MMBench,
        description="MMBench: 2-4-way multiple choice with hints; circular accuracy where the copies exist.",
        read=read_mmbench,
        prompt=mmbench_prompt,
        official=mmbench_scores,
        cluster=circular_group,
        items=4329,  # the published size, for shards: auto
        source="lmms-lab/MMBench (config en, split dev)",
        columns=COLUMNS,
    )
)
