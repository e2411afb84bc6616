"""TextVQA (``lmms-lab/textvqa``, split ``validation``): open questions about text in images, ten human answers
each. The gold answer is the most frequent human answer; the official score is VQA soft accuracy against all
ten (EvalAI's normalisation, averaged over the ten leave-one-out subsets), on the raw response.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np

from blindspot.benchmarks.official import OfficialInput, Scores, weighted_mean
from blindspot.benchmarks.published import SHORT_INSTRUCTION, PublishedBenchmark, guarded_rows
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject

COLUMNS = ("question_id", "question", "answers", "image")


class TextVQA(PublishedBenchmark):
    adapter: Literal["textvqa"] = "textvqa"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "validation"


def read_textvqa(config: TextVQA) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, textvqa_item)


def textvqa_item(config: TextVQA, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    return RawItem(
        source_index=index,
        source_id=str(row["question_id"]),
        question=row["question"],
        options=None,
        answer=row["answers"],
        images=[row["image"]],
        answer_type="open",
        metadata={k: row.get(k) for k in ("image_id", "image_classes") if k in row},
    )


def textvqa_prompt(item: Item, version: str) -> str:
    return f"{item['question']}\n{SHORT_INSTRUCTION}"


def textvqa_scores(data: OfficialInput) -> Scores:
    official = data.frame["score_official"].cast(float).fill_null(0.0).to_numpy()
    return {"accuracy": weighted_mean(data.weights, np.asarray(official, dtype=float))}


TEXTVQA = register(
    BenchmarkSpec(
        name="textvqa",
        config=TextVQA,
        description="TextVQA: open questions about text in images; VQA soft accuracy over 10 human answers.",
        read=read_textvqa,
        prompt=textvqa_prompt,
        official=textvqa_scores,
        items=5000,  # the published size, for shards: auto
        source="lmms-lab/textvqa (split validation)",
        columns=COLUMNS,
    )
)
