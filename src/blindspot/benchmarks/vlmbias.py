"""VLMBias ("Vision language models are biased", ``anvo25/vlms-are-biased``, split ``main``): counting and
yes/no questions about images edited against a famous prior (a three-stripe logo with four stripes).

The published ``prompt`` asks for the answer in curly braces and is the prompt as published. The official match
reads the last ``{...}`` of the response (the whole response where there is none), compares it with the gold
answer after normalising case, spaces and punctuation, and falls back to comparing digits only. The bias ratio
is the share of answers that match ``expected_bias`` instead: the prior's answer. ``expected_bias`` is also the
default probe target for the prior (``probe: {prior_field: expected_bias}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from blindspot.benchmarks.gold import infer_answer_type
from blindspot.benchmarks.official import OfficialInput, Scores, weighted_mean
from blindspot.benchmarks.published import PublishedBenchmark, guarded_rows, item_meta
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject

COLUMNS = ("image", "prompt", "ground_truth", "expected_bias", "topic")
_BRACES = re.compile(r"\{([^{}]*)\}")


class VLMBias(PublishedBenchmark):
    adapter: Literal["vlmbias"] = "vlmbias"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "main"
    probe: dict[str, Any] = Field(
        default_factory=lambda: {"prior_field": "expected_bias"},
        description="Probe targets for this benchmark (default: the prior is `expected_bias`).",
    )


def read_vlmbias(config: VLMBias) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, vlmbias_item)


def vlmbias_item(config: VLMBias, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    answer = row["ground_truth"]
    return RawItem(
        source_index=index,
        source_id=str(row["ID"]) if row.get("ID") is not None else None,
        question=row["prompt"],
        options=None,
        answer=answer,
        images=[row["image"]],
        answer_type=infer_answer_type(answer, None),
        metadata={
            "expected_bias": row["expected_bias"],
            "ground_truth": answer,
            "topic": row["topic"],
            "sub_topic": row.get("sub_topic"),
        },
    )


def vlmbias_prompt(item: Item, version: str) -> str:
    return str(item["question"])


def _normalise(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", text.casefold())


def vlmbias_match(response: str, target: Any) -> bool:
    """The official match of a response against an answer (gold, or the expected bias)."""
    if target is None:
        return False
    braced = _BRACES.findall(response)
    said = braced[-1] if braced else response
    if _normalise(said) == _normalise(str(target)) and _normalise(said):
        return True
    digits, want = re.sub(r"\D", "", said), re.sub(r"\D", "", str(target))
    return bool(want) and digits == want


def vlmbias_official(text: str, item: Item, scorer: str) -> float:
    return float(vlmbias_match(text, item_meta(item)["ground_truth"]))


def vlmbias_scores(data: OfficialInput) -> Scores:
    texts = data.column("raw_text")
    correct = np.array([vlmbias_match(t, m["ground_truth"]) for t, m in zip(texts, data.metas(), strict=True)])
    biased = np.array([vlmbias_match(t, m["expected_bias"]) for t, m in zip(texts, data.metas(), strict=True)])
    return {
        "accuracy": weighted_mean(data.weights, correct.astype(float)),
        "bias_ratio": weighted_mean(data.weights, biased.astype(float)),
    }


VLMBIAS = register(
    BenchmarkSpec(
        name="vlmbias",
        config=VLMBias,
        description="VLMBias: counts and yes/no on images edited against a famous prior; accuracy and bias ratio.",
        read=read_vlmbias,
        prompt=vlmbias_prompt,
        score_official=vlmbias_official,
        official=vlmbias_scores,
        items=1400,  # the published size, for shards: auto
        source="anvo25/vlms-are-biased (split main)",
        columns=(*COLUMNS, "ID", "sub_topic"),
    )
)
