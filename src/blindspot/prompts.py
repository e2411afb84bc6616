"""Versioned prompt templates: the text a model is asked, before any model's chat template is applied.

A template change is a new version: outputs record the version they used, every model-running stage receives it
in its config slice (``prompt.version``), and the snapshot test (tests/test_models.py) pins the exact rendered
prompt of each answer type for each model family. Version v1 follows lmms-eval's post-prompts for the same
answer types. How a model's chat template wraps this text is :mod:`blindspot.models.prompts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blindspot.contracts.answers import LETTERS


@dataclass(frozen=True)
class PromptTemplate:
    multiple_choice: str
    yes_no: str
    open: str
    count: str

    def instruction(self, answer_type: str) -> str:
        return str(getattr(self, answer_type))


PROMPTS: dict[str, PromptTemplate] = {
    "v1": PromptTemplate(
        multiple_choice="Answer with the option's letter from the given choices directly.",
        yes_no="Answer the question using a single word: yes or no.",
        open="Answer the question using a single word or phrase.",
        count="Answer with a single number.",
    )
}


def lettered(question: str, options: Sequence[str] | None, instruction: str) -> str:
    """A question, its options one per line as "A. option", and an instruction (lmms-eval's layout)."""
    lines = [question.strip(), *(f"{LETTERS[i]}. {option}" for i, option in enumerate(options or []))]
    return "\n".join([*lines, instruction] if instruction else lines)


def question_text(question: str, options: list[str] | None, answer_type: str, version: str) -> str:
    """The user text: question, lettered options (multiple choice), and the answer-type instruction."""
    shown = options if answer_type == "multiple_choice" else None
    return lettered(question, shown, PROMPTS[version].instruction(answer_type))


def item_text(item: Mapping[str, Any], version: str) -> str:
    """:func:`question_text` of a canonical item (a row of items.parquet)."""
    return question_text(item["question"], item["options"], item["answer_type"], version)


def option_labels(answer_type: str, options: list[str] | None) -> list[str] | None:
    """The closed answer space scored from the first-token distribution (None for open answers)."""
    if answer_type == "multiple_choice" and options:
        return list(LETTERS[: len(options)])
    if answer_type == "yes_no":
        return ["yes", "no"]
    return None
