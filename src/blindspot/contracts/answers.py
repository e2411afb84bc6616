"""Answer vocabulary shared by staging (canonical gold), prompts, parsing, scoring and decay.

- answer types and the outcome of a scored response;
- option letters (multiple choice is answered and stored as a letter);
- numbers: digits or English number words, and their one canonical spelling.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

AnswerType = Literal["multiple_choice", "yes_no", "open", "count"]
ANSWER_TYPES: tuple[str, ...] = get_args(AnswerType)

Outcome = Literal["correct", "wrong", "unparsed", "abstain"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
"""``correct`` (score > 0), ``wrong`` (score 0), ``unparsed`` (no answer could be read), ``abstain`` (a refusal)."""

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Option labels, in order: option i is LETTERS[i]."""

NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
).split()


def format_number(value: float) -> str:
    """The canonical spelling of a number: ``3``, ``2.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_number(text: str) -> float | None:
    """A number from text: digits (with sign, decimals, thousands commas) or an English word up to twenty."""
    cleaned = text.strip().lower().replace(",", "")
    if cleaned in NUMBER_WORDS:
        return float(NUMBER_WORDS.index(cleaned))
    try:
        number = float(cleaned)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def chance_options(answer_type: str, n_options: int | None) -> int | None:
    """The size of a closed answer space (None for open answers and counts)."""
    if answer_type == "multiple_choice":
        return n_options
    if answer_type == "yes_no":
        return 2
    return None
