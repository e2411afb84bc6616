"""Versioned prompt templates: the text a model is asked, before any model's chat template is applied.

A template change is a new version: outputs record the version they used, every model-running stage receives it
in its config slice (``prompt.version``), and the snapshot test (tests/test_models.py) pins the exact rendered
prompt of each answer type for each model family. Version v1 follows lmms-eval's post-prompts for the same
answer types. How a model's chat template wraps this text is :mod:`blindspot.models.prompts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from blindspot.contracts.answers import LETTERS, AnswerType

_ANSWER_VERB = re.compile(r"\b(?:answer|respond|reply|choose|select|pick)\b", re.IGNORECASE)
_ANSWER_FORM = re.compile(
    r"\byes\s*(?:or|/)\s*no\b|\b(?:option|choice)s?\b|\bletter\b|\b(?:single|one)\s+(?:word|number|digit)\b"
    r"|\bphrase\b|\bnumber\b|\bdirectly\b",
    re.IGNORECASE,
)


def carries_instruction(question: str) -> bool:
    """Whether a question already ends with its own answer-format instruction ("... ? Please answer yes or no.",
    MME's layout; "Answer with the option's letter ..."): its last sentence, after the question mark, asks for an
    answer and names a form (yes or no, an option or letter, a single word or number)."""
    text = question.strip()
    tail = text.rsplit("?", 1)[1] if "?" in text else text.rsplit("\n", 1)[-1]
    return bool(_ANSWER_VERB.search(tail) and _ANSWER_FORM.search(tail))


@dataclass(frozen=True)
class PromptTemplate:
    multiple_choice: str
    yes_no: str
    open: str
    count: str
    keeps_own_instruction: bool = False
    """Add no instruction to a question that carries its own (:func:`carries_instruction`): never two stacked."""

    def instruction(self, answer_type: AnswerType, question: str = "") -> str:
        if self.keeps_own_instruction and carries_instruction(question):
            return ""
        return str(getattr(self, answer_type))


_LMMS_EVAL = PromptTemplate(
    multiple_choice="Answer with the option's letter from the given choices directly.",
    yes_no="Answer the question using a single word: yes or no.",
    open="Answer the question using a single word or phrase.",
    count="Answer with a single number.",
)

PROMPTS: dict[str, PromptTemplate] = {
    "v1": _LMMS_EVAL,
    "v2": replace(_LMMS_EVAL, keeps_own_instruction=True),
}
"""v1: lmms-eval's post-prompts, always added. v2 (the default): the same, but a question that carries its own
instruction (MME's "Please answer yes or no.") gets none added."""


def lettered(question: str, options: Sequence[str] | None, instruction: str) -> str:
    """A question, its options one per line as "A. option", and an instruction (lmms-eval's layout)."""
    lines = [question.strip(), *(f"{LETTERS[i]}. {option}" for i, option in enumerate(options or []))]
    return "\n".join([*lines, instruction] if instruction else lines)


def question_text(question: str, options: list[str] | None, answer_type: AnswerType, version: str) -> str:
    """The user text: question, lettered options (multiple choice), and the answer-type instruction."""
    shown = options if answer_type == "multiple_choice" else None
    return lettered(question, shown, PROMPTS[version].instruction(answer_type, question))


def item_text(item: Mapping[str, Any], version: str) -> str:
    """:func:`question_text` of a canonical item (a row of items.parquet)."""
    return question_text(item["question"], item["options"], item["answer_type"], version)


def option_labels(answer_type: AnswerType, options: list[str] | None) -> list[str] | None:
    """The closed answer space scored from the first-token distribution (None for open answers)."""
    if answer_type == "multiple_choice" and options:
        return list(LETTERS[: len(options)])
    if answer_type == "yes_no":
        return ["yes", "no"]
    return None
