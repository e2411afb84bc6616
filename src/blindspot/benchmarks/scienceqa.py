"""ScienceQA (``lmms-lab/ScienceQA``, config ``ScienceQA-IMG``, split ``test``): two- to five-way multiple
choice on science questions. A question without an image goes to the rejects (``no_image``): it has nothing to
obfuscate. The ``hint`` is shown as context before the question, as lmms-eval does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from blindspot.benchmarks.official import OfficialInput, Scores, accuracy_by
from blindspot.benchmarks.published import (
    MC_INSTRUCTION,
    PublishedBenchmark,
    choice_item,
    guarded_rows,
    item_meta,
    listed_options,
    text_or_none,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject
from blindspot.prompts import lettered

COLUMNS = ("question", "choices", "answer", "hint", "image")


class ScienceQA(PublishedBenchmark):
    adapter: Literal["scienceqa"] = "scienceqa"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "test"
    subset: str | None = "ScienceQA-IMG"


def read_scienceqa(config: ScienceQA) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, scienceqa_item)


def scienceqa_item(config: ScienceQA, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    if row.get("image") is None:
        return Reject(index, None, "no_image", "a ScienceQA question without an image: nothing to obfuscate")
    options = listed_options(index, None, row["choices"])
    if isinstance(options, Reject):
        return options
    extra = {k: row.get(k) for k in ("subject", "topic", "category", "grade", "skill") if k in row}
    return choice_item(index, None, row["question"], options, row["answer"], row["image"], answer_format="index",
                       hint=text_or_none(row.get("hint")), **extra)  # fmt: skip


def scienceqa_prompt(item: Item, version: str) -> str:
    hint = item_meta(item).get("hint")
    question = f"Context: {hint}\n{item['question']}" if hint else item["question"]
    return lettered(question, item["options"], MC_INSTRUCTION)


def scienceqa_scores(data: OfficialInput) -> Scores:
    return accuracy_by(data, "subject")


SCIENCEQA = register(
    BenchmarkSpec(
        name="scienceqa",
        config=ScienceQA,
        description="ScienceQA-IMG: 2-5-way science multiple choice; questions without an image are rejected.",
        read=read_scienceqa,
        prompt=scienceqa_prompt,
        official=scienceqa_scores,
        items=2017,  # the published size, for shards: auto
        source="lmms-lab/ScienceQA (config ScienceQA-IMG, split test)",
        columns=COLUMNS,
    )
)
