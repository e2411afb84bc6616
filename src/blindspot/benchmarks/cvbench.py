"""CV-Bench (``nyu-visionx/CV-Bench``, split ``test``): two- to six-way multiple choice on spatial relations,
counting (2D) and depth and distance (3D).

Options are a list, the answer a label such as "(A)". The published ``prompt`` (the question, "Select from the
following choices." and "(A) ..." lines) is the prompt, followed by the letter instruction. Official scores
(CV-Bench's): accuracy per source dataset; 2D is the mean of ADE20K's and COCO's, 3D is Omni3D's, and the
overall score the mean of 2D and 3D.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np

from blindspot.benchmarks.official import OfficialInput, Scores, mean_of_group_means, weighted_mean
from blindspot.benchmarks.published import (
    MC_INSTRUCTION,
    PublishedBenchmark,
    choice_item,
    guarded_rows,
    item_meta,
    listed_options,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject

COLUMNS = ("idx", "type", "task", "image", "question", "choices", "answer", "prompt", "source")


class CVBench(PublishedBenchmark):
    adapter: Literal["cvbench"] = "cvbench"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "test"


def read_cvbench(config: CVBench) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, cvbench_item)


def cvbench_item(config: CVBench, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    item_id = str(row["idx"])
    options = listed_options(index, item_id, row["choices"])
    if isinstance(options, Reject):
        return options
    return choice_item(index, item_id, row["question"], options, row["answer"], row["image"], type=row["type"],
                       task=row["task"], source=row["source"], published_prompt=row["prompt"])  # fmt: skip


def cvbench_prompt(item: Item, version: str) -> str:
    return f"{item_meta(item)['published_prompt']}\n{MC_INSTRUCTION}"


def cvbench_scores(data: OfficialInput) -> Scores:
    correct = data.array("score")
    kinds = np.array([str(t) for t in data.meta("type")])
    sources = [str(s) for s in data.meta("source")]
    scores = {}
    for kind in ("2D", "3D"):
        mask = kinds == kind
        if mask.any():
            kept = [s for s, m in zip(sources, mask, strict=True) if m]
            scores[f"accuracy_{kind.lower()}"] = mean_of_group_means(data.weights[:, mask], kept, correct[mask])
    if len(scores) == 2:
        scores["accuracy"] = (scores["accuracy_2d"] + scores["accuracy_3d"]) / 2
    else:
        scores["accuracy"] = weighted_mean(data.weights, correct)
    return scores


CVBENCH = register(
    BenchmarkSpec(
        name="cvbench",
        config=CVBench,
        description="CV-Bench: 2D (relation, count) and 3D (depth, distance) multiple choice.",
        read=read_cvbench,
        prompt=cvbench_prompt,
        official=cvbench_scores,
        items=2638,  # the published size, for shards: auto
        source="nyu-visionx/CV-Bench (split test)",
        columns=COLUMNS,
    )
)
