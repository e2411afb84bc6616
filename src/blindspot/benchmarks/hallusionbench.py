"""HallusionBench (``lmms-lab/HallusionBench``, split ``image``): yes/no questions in sets that vary the figure
(visual dependent, VD) or ask with no figure at all (visual supplement, VS).

A VS question without a figure (``figure_id`` 0, ``visual_input`` "0", no image) asks the language prior
alone: it has nothing to obfuscate, so it goes to the rejects (``no_image``) and the summary counts it. The
prompt is the question as published (the benchmark has no post-prompt).

Official scores: aAcc (every question), fAcc (a figure counts when every question about it is right: rows
sharing category, subcategory, set and figure) and qAcc (a question counts when it is right with every figure:
rows sharing category, subcategory, set and question id). The bootstrap resamples whole question sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from blindspot.benchmarks.official import OfficialInput, Scores, all_correct_rate, weighted_mean
from blindspot.benchmarks.published import PublishedBenchmark, guarded_rows, item_meta, text_or_none
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.contracts.items import RawItem, Reject

COLUMNS = ("category", "subcategory", "set_id", "figure_id", "question_id", "question", "gt_answer", "image")


class HallusionBench(PublishedBenchmark):
    adapter: Literal["hallusionbench"] = "hallusionbench"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "image"


def read_hallusionbench(config: HallusionBench) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, hallusionbench_item)


def hallusionbench_item(config: HallusionBench, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    key = [row["category"], row["subcategory"], row["set_id"], row["figure_id"], row["question_id"]]
    item_id = "_".join(str(k) for k in key)
    no_figure = str(row.get("visual_input")) == "0" or (row["category"] == "VS" and str(row["figure_id"]) == "0")
    if no_figure or row.get("image") is None:
        return Reject(index, item_id, "no_image",
                      "a question without a figure (figure_id 0) asks the language prior alone: nothing to "
                      "obfuscate")  # fmt: skip
    gold = {"1": "yes", "0": "no"}.get(str(text_or_none(row["gt_answer"])), row["gt_answer"])
    return RawItem(
        source_index=index,
        source_id=item_id,
        question=row["question"],
        options=None,
        answer=gold,
        images=[row["image"]],
        answer_type="yes_no",
        metadata={name: row[name] for name in COLUMNS[:5]},
    )


def hallusion_prompt(item: Item, version: str) -> str:
    return str(item["question"])


def _key(meta: dict, last: str) -> str:
    return "_".join(str(meta[k]) for k in ("category", "subcategory", "set_id", last))


def hallusion_scores(data: OfficialInput) -> Scores:
    correct = data.array("score")
    metas = data.metas()
    return {
        "aAcc": weighted_mean(data.weights, correct),
        "fAcc": all_correct_rate(data.weights, [_key(m, "figure_id") for m in metas], correct),
        "qAcc": all_correct_rate(data.weights, [_key(m, "question_id") for m in metas], correct),
    }


def question_set(item: Item) -> str:
    meta = item_meta(item)
    return "_".join(str(meta[k]) for k in ("category", "subcategory", "set_id"))


HALLUSIONBENCH = register(
    BenchmarkSpec(
        name="hallusionbench",
        config=HallusionBench,
        description="HallusionBench: yes/no question sets over varied figures; aAcc, fAcc, qAcc.",
        read=read_hallusionbench,
        prompt=hallusion_prompt,
        official=hallusion_scores,
        cluster=question_set,
        items=950,  # the published size, for shards: auto
        source="lmms-lab/HallusionBench (split image)",
        columns=COLUMNS,
    )
)
