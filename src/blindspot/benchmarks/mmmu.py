"""MMMU (``lmms-lab/MMMU``, split ``validation``): college-level multiple choice and open questions, with up to
seven images per question (``image_1`` ... ``image_7``) referenced in the text as ``<image N>``.

An item's images are shown in the order the question (then its options) first references them, then any
unreferenced one in column order; the ``<image N>`` tags stay in the text, so the model can tell which is which.
A referenced image that is missing rejects the item (``missing_image``); one that cannot be decoded or rendered
rejects it with that image's reason.

Scoring follows MMMU's own rules: multiple choice by letter, without the random guess MMMU's parser falls back
to; open answers by MMMU's ``eval_open`` (the response's key sub-answers and the numbers in them, normalised:
numbers rounded to 2 decimals, text lower-cased; correct when a number equals a gold number or a gold string is
contained in a response string). Official scores: accuracy overall and per question type.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np

from blindspot.answers import Parsed
from blindspot.benchmarks.gold import parse_options
from blindspot.benchmarks.official import OfficialInput, Scores, weighted_mean
from blindspot.benchmarks.published import (
    MC_INSTRUCTION,
    SHORT_INSTRUCTION,
    PublishedBenchmark,
    guarded_rows,
)
from blindspot.benchmarks.registry import BenchmarkSpec, Item, default_score, register
from blindspot.contracts.items import RawItem, Reject, RejectedItem
from blindspot.prompts import lettered

IMAGE_COLUMNS = tuple(f"image_{i}" for i in range(1, 8))
COLUMNS = ("id", "question", "options", "answer", "question_type", *IMAGE_COLUMNS)
_TAG = re.compile(r"<image (\d+)>")


class MMMU(PublishedBenchmark):
    adapter: Literal["mmmu"] = "mmmu"
    required_columns: ClassVar[tuple[str, ...]] = COLUMNS
    split: str | list[str] = "validation"


def image_order(row: dict[str, Any], options: list[str] | None) -> list[int]:
    """Image numbers in first-reference order (question, then options), then unreferenced ones."""
    text = str(row.get("question") or "") + "\n" + "\n".join(options or [])
    order: list[int] = []
    for number in (int(n) for n in _TAG.findall(text)):
        if number not in order:
            order.append(number)
    for i, column in enumerate(IMAGE_COLUMNS, start=1):
        if i not in order and row.get(column) is not None:
            order.append(i)
    return order


def _gold(row: dict[str, Any]) -> Any:
    """An open answer may be published as a list literal of accepted answers ("['24/7', '3.43']")."""
    answer = row["answer"]
    if isinstance(answer, str) and answer.strip().startswith("["):
        try:
            parsed = ast.literal_eval(answer.strip())
        except (ValueError, SyntaxError):
            return answer
        if isinstance(parsed, list) and parsed:
            return [str(a) for a in parsed]
    return answer


def read_mmmu(config: MMMU) -> Iterator[RawItem | Reject]:
    return guarded_rows(config, mmmu_item)


def mmmu_item(config: MMMU, index: int, _split: str, row: dict[str, Any]) -> RawItem | Reject:
    """One source row as an item, or a reject."""
    item_id = str(row["id"])
    multiple_choice = str(row["question_type"]).strip() == "multiple-choice"
    try:
        options = parse_options(row["options"]) if multiple_choice else None
    except RejectedItem as error:
        return Reject(index, item_id, error.reason, error.message)
    order = image_order(row, options)
    missing = [n for n in order if row.get(f"image_{n}") is None]
    if missing:
        return Reject(index, item_id, "missing_image", f"image {missing[0]} is referenced but empty")
    return RawItem(
        source_index=index,
        source_id=item_id,
        question=row["question"],
        options=options,
        answer=_gold(row) if not multiple_choice else row["answer"],
        images=[row[f"image_{n}"] for n in order],
        answer_type="multiple_choice" if multiple_choice else "open",
        answer_format="letter" if multiple_choice else "auto",
        metadata={"question_type": row["question_type"], "image_order": order,
                  **{k: row.get(k) for k in ("subfield", "topic_difficulty", "img_type") if k in row}},
    )  # fmt: skip


def mmmu_prompt(item: Item, version: str) -> str:
    """lmms-eval's MMMU prompt: lettered options and the letter instruction, or the short-answer one."""
    if item["answer_type"] == "multiple_choice":
        return lettered(item["question"], item["options"], MC_INSTRUCTION)
    return f"{item['question']}\n{SHORT_INSTRUCTION}"


# ------------------------------------------------------------------------------------------- MMMU's eval_open

_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_NUMBER_PATTERNS = (
    r"-?\b\d{1,3}(?:,\d{3})+\b",  # with thousands separators
    r"-?\d+(?:\.\d+)?[eE][+-]?\d+",  # scientific
    r"-?(?:\d+\.\d+|\.\d+|\d+)(?![eE][+-]?\d+)(?![,\d])",  # plain
)


def _key_responses(response: str) -> list[str]:
    """The tail after the last answer indicator of each sentence (the shortest such tail), as MMMU reads."""
    response = response.strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys = []
    for position, sentence in enumerate(sentences):
        indicators = [*_INDICATORS, "="] if position == len(sentences) - 1 else list(_INDICATORS)
        shortest: str | None = None
        for indicator in indicators:
            if indicator in sentence:
                tail = sentence.split(indicator)[-1].strip()
                if shortest is None or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in {":", ",", ".", "!", "?", ";", "'"}:
            keys.append(shortest)
    return keys or [response]


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _normalise(text: str) -> list[str | float]:
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def open_predictions(response: str) -> list[str | float]:
    """MMMU's ``parse_open_response``: key sub-answers, the numbers in them, each normalised."""
    keys = _key_responses(response)
    candidates = list(keys)
    for key in keys:
        for pattern in _NUMBER_PATTERNS:
            candidates += re.findall(pattern, key)
    out: list[str | float] = []
    for candidate in candidates:
        for value in _normalise(candidate):
            if value not in out:
                out.append(value)
    return out


def eval_open(gold: list[str], predictions: list[str | float]) -> bool:
    """MMMU's ``eval_open``: a number must equal a gold number; a string must contain a gold string."""
    golds = [g for answer in gold for g in _normalise(str(answer))]
    for prediction in predictions:
        if isinstance(prediction, str):
            if any(isinstance(g, str) and g in prediction for g in golds):
                return True
        elif prediction in golds:
            return True
    return False


def _references(item: Item) -> list[str]:
    return list(item["answers"] or [item["answer"]])


def mmmu_score(parsed: Parsed, item: Item, scorer: str) -> tuple[str, float]:
    if item["answer_type"] != "open" or parsed.status != "parsed" or parsed.answer is None:
        return default_score(parsed, item, scorer)
    score = float(eval_open(_references(item), open_predictions(parsed.answer)))
    return ("correct" if score else "wrong"), score


def mmmu_official(text: str, item: Item, scorer: str) -> float | None:
    if item["answer_type"] != "open":
        return None
    return float(eval_open(_references(item), open_predictions(text)))


def mmmu_scores(data: OfficialInput) -> Scores:
    official = data.frame["score_official"].to_numpy()
    correct = np.where(np.isfinite(official.astype(float)), official, data.array("score")).astype(float)
    types = np.array(data.column("answer_type"))
    scores = {"accuracy": weighted_mean(data.weights, correct)}
    for name, kind in (("multiple_choice", "multiple_choice"), ("open", "open")):
        if (types == kind).any():
            scores[f"accuracy_{name}"] = weighted_mean(data.weights, correct, types == kind)
    return scores


MMMU_SPEC = register(
    BenchmarkSpec(
        name="mmmu",
        config=MMMU,
        description="MMMU: college-level multiple choice and open questions, up to 7 images each.",
        read=read_mmmu,
        prompt=mmmu_prompt,
        score=mmmu_score,
        score_official=mmmu_official,
        official=mmmu_scores,
        items=900,  # the published size, for shards: auto
        source="lmms-lab/MMMU (split validation)",
        columns=COLUMNS,
    )
)
