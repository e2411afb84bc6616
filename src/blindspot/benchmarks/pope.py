"""POPE (``lmms-lab/POPE``) and RePOPE (POPE's images and questions with the re-annotated labels of
``YanNeu/RePOPE``): yes/no object-hallucination questions on COCO images.

POPE's questions come in three samplings of the absent objects (its splits adversarial, popular, random); the
question ids count within each, so an item is ``<category>/<question_id>``. RePOPE relabels POPE's questions
and drops the ambiguous ones: its ``annotations/coco_repope_<category>.json`` hold the kept questions with their
new ``label``. A POPE question RePOPE dropped goes to the rejects (``dropped_by_repope``), one whose image or text
disagrees with RePOPE's record to ``label_mismatch``.

Official scores (POPE's): accuracy, precision, recall, F1 and the yes-ratio, overall and per category; "yes" is
the positive class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from blindspot.benchmarks.official import OfficialInput, Scores, binary_scores
from blindspot.benchmarks.published import SHORT_INSTRUCTION, PublishedBenchmark, guarded_rows, text_or_none
from blindspot.benchmarks.registry import BenchmarkSpec, Item, register
from blindspot.benchmarks.sources import SourceError
from blindspot.config_base import PathKind
from blindspot.contracts.items import RawItem, Reject

CATEGORIES = ("adversarial", "popular", "random")
POPE_COLUMNS = ("question_id", "question", "answer", "image_source", "image")


class Pope(PublishedBenchmark):
    adapter: Literal["pope"] = "pope"
    required_columns: ClassVar[tuple[str, ...]] = POPE_COLUMNS
    split: str | list[str] = Field(default_factory=lambda: list(CATEGORIES), description="The categories to stage.")
    subset: str | None = "Full"


class RePope(Pope):
    adapter: Literal["repope"] = "repope"  # type: ignore[assignment]
    labels: str = Field(
        description="RePOPE's labels: the folder holding coco_repope_<category>.json (its annotations/ folder, or "
        "the repository download that contains it)."
    )

    def paths(self) -> list[tuple[str, str, PathKind]]:
        return [*super().paths(), ("labels", self.labels, "directory")]

    def label_file(self, category: str) -> Path:
        root = Path(self.labels)
        for folder in (root, root / "annotations"):
            if (folder / f"coco_repope_{category}.json").is_file():
                return folder / f"coco_repope_{category}.json"
        raise SourceError(f"no coco_repope_{category}.json in '{root}' or its annotations/", key="benchmark.labels")

    def input_files(self) -> list[str]:
        files = super().input_files()
        for category in self.splits():
            try:
                files.append(str(self.label_file(category)))
            except SourceError:
                continue
        return files

    def data_problems(self) -> list[str]:
        problems = super().data_problems()
        for category in self.splits():
            try:
                self.label_file(category)
            except SourceError as error:
                problems.append(str(error).removeprefix("benchmark."))
        return problems


def _category(row: dict[str, Any], split: str) -> str:
    return text_or_none(row.get("category")) or split


def _pope_item(index: int, category: str, row: dict[str, Any], answer: Any, **meta: Any) -> RawItem:
    return RawItem(
        source_index=index,
        source_id=f"{category}/{row['question_id']}",
        question=row["question"],
        options=None,
        answer=answer,
        images=[row["image"]],
        answer_type="yes_no",
        metadata={"category": category, "image_source": row.get("image_source"), **meta},
    )


def read_pope(config: Pope) -> Iterator[RawItem | Reject]:
    return guarded_rows(
        config, lambda _, index, split, row: _pope_item(index, _category(row, split), row, row.get("answer"))
    )


def read_repope_labels(file: Path) -> dict[str, dict[str, Any]]:
    """RePOPE's records by question id; the file is JSON lines (POPE's own format) or one JSON list."""
    text = file.read_text(encoding="utf-8")
    try:
        loaded = json.loads(text)
        records = loaded if isinstance(loaded, list) else [loaded]
    except json.JSONDecodeError:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            message = f"'{file}' is neither JSON nor JSON lines ({error.msg})"
            raise SourceError(message, key="benchmark.labels") from None
    out = {}
    for record in records:
        if not isinstance(record, dict) or "question_id" not in record or "label" not in record:
            raise SourceError(f"'{file}' has a record without question_id and label: {str(record)[:80]}",
                              key="benchmark.labels")  # fmt: skip
        out[str(record["question_id"])] = record
    return out


def _same_text(a: Any, b: Any) -> bool:
    return " ".join(str(a).casefold().split()) == " ".join(str(b).casefold().split())


def read_repope(config: RePope) -> Iterator[RawItem | Reject]:
    labels: dict[str, dict[str, dict[str, Any]]] = {}

    def item(config: RePope, index: int, split: str, row: dict[str, Any]) -> RawItem | Reject:
        category = _category(row, split)
        if category not in labels:  # read once per category, when its first row comes
            labels[category] = read_repope_labels(config.label_file(category))
        item_id = f"{category}/{row['question_id']}"
        record = labels[category].get(str(row["question_id"]))
        if record is None:
            return Reject(index, item_id, "dropped_by_repope", "RePOPE dropped this POPE question (ambiguous label)")
        image = Path(str(record.get("image", ""))).stem
        if image and row.get("image_source") and image != Path(str(row["image_source"])).stem:
            message = f"RePOPE's record is about image {image}, POPE's row about {row['image_source']}"
            return Reject(index, item_id, "label_mismatch", message)
        if record.get("text") and not _same_text(record["text"], row["question"]):
            return Reject(index, item_id, "label_mismatch",
                          f"RePOPE's question {record['text']!r} is not POPE's {row['question']!r}")  # fmt: skip
        pope_answer = text_or_none(row.get("answer"))
        label = record["label"]
        relabelled = pope_answer is not None and str(label).casefold() != pope_answer.casefold()
        return _pope_item(index, category, row, label, pope_answer=pope_answer, relabelled=relabelled)

    return guarded_rows(config, item)


def pope_prompt(item: Item, version: str) -> str:
    """lmms-eval's POPE prompt: the question and its short-answer post-prompt."""
    return f"{item['question']}\n{SHORT_INSTRUCTION}"


def pope_scores(data: OfficialInput) -> Scores:
    predicted = np.array(data.column("parsed"), dtype=object)
    gold = np.array(data.column("answer"), dtype=object)
    scores = binary_scores(data.weights, predicted, gold)
    categories = np.array(data.meta("category"))
    for category in sorted(set(categories.tolist())):
        mask = categories == category
        per = binary_scores(data.weights[:, mask], predicted[mask], gold[mask])
        scores[f"accuracy_{category}"] = per["accuracy"]
        scores[f"f1_{category}"] = per["f1"]
    return scores


POPE = register(
    BenchmarkSpec(
        name="pope",
        config=Pope,
        description="POPE: yes/no object-hallucination questions on COCO images, three samplings.",
        read=read_pope,
        prompt=pope_prompt,
        official=pope_scores,
        items=9000,  # the published size, for shards: auto
        source="lmms-lab/POPE (config Full: adversarial, popular, random)",
        columns=(*POPE_COLUMNS, "category"),
    )
)

REPOPE = register(
    BenchmarkSpec(
        name="repope",
        config=RePope,
        description="RePOPE: POPE's questions with re-annotated labels; dropped questions go to the rejects.",
        read=read_repope,
        prompt=pope_prompt,
        official=pope_scores,
        items=8200,  # the published size, for shards: auto
        source="lmms-lab/POPE (config Full) + YanNeu/RePOPE annotations/coco_repope_<category>.json",
        columns=(*POPE_COLUMNS, "category", "labels: question_id, image, text, label"),
    )
)
