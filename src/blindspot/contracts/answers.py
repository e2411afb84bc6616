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
    "seventeen eighteen nineteen"
).split()
TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_word_value(text: str) -> int | None:
    """An English number word or compound up to one hundred: "seven", "twenty-one", "twenty one", "a hundred"."""
    words = text.casefold().replace("-", " ").split()
    if words in (["hundred"], ["a", "hundred"], ["one", "hundred"]):
        return 100
    if len(words) == 1:
        if words[0] in NUMBER_WORDS:
            return NUMBER_WORDS.index(words[0])
        if words[0] in TENS_WORDS:
            return 20 + 10 * TENS_WORDS.index(words[0])
    if len(words) == 2 and words[0] in TENS_WORDS and words[1] in NUMBER_WORDS[1:10]:
        return 20 + 10 * TENS_WORDS.index(words[0]) + NUMBER_WORDS.index(words[1])
    return None


def format_number(value: float) -> str:
    """The canonical spelling of a number: ``3``, ``2.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_number(text: str) -> float | None:
    """A number from text: digits (with sign, decimals, thousands commas) or English words up to one hundred."""
    cleaned = text.strip().lower().replace(",", "")
    word = number_word_value(cleaned)
    if word is not None:
        return float(word)
    try:
        number = float(cleaned)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def chance_options(answer_type: AnswerType, n_options: int | None) -> int | None:
    """The size of a closed answer space (None for open answers and counts)."""
    if answer_type == "multiple_choice":
        return n_options
    if answer_type == "yes_no":
        return 2
    return None


UNPARSED_BY_TYPE = "share_unparsed_answers_"
"""The decay metric ``share_unparsed_answers_<answer type>``: the unparsed share of one answer type's answers."""


def mostly_unparsed_warning(
    model: str,
    bench: str,
    unparsed: float | None,
    threshold: float,
    by_type: dict[str, float | None] | None = None,
) -> str | None:
    """The one line that flags a benchmark whose answers mostly could not be read, over all its answers or within
    one answer type (a benchmark whose yes/no half is all unparsed warns even when the whole is a third); None
    where they could."""
    mostly = {kind: share for kind, share in (by_type or {}).items() if share is not None and share > threshold}
    if (unparsed is None or unparsed <= threshold) and not (mostly and len(by_type or {}) > 1):
        return None
    fix = "check the prompt's answer format and the benchmark's answer_type"
    if unparsed is not None and unparsed > threshold:
        return (
            f"WARNING: {100 * unparsed:.0f}% of {model}'s answers on {bench} could not be read (unparsed): its rates "
            f"rest on the rest; {fix} (decay.mostly_unparsed is {threshold})"
        )
    worst = ", ".join(f"{100 * share:.0f}% of its {kind} answers" for kind, share in sorted(mostly.items()))
    return (
        f"WARNING: {worst} on {bench} could not be read (unparsed; {100 * (unparsed or 0):.0f}% of all "
        f"{model}'s answers there): the rates of that answer type rest on the rest; {fix} (decay.mostly_unparsed is "
        f"{threshold})"
    )


def option_margin(logprobs: dict[str, float], answer: str | None) -> float | None:
    """How far ``answer``'s option leads the best other option, in nats (log-prob minus the runner-up's); None
    where the answer is not one of the options or there is no other option to lead."""
    if answer is None or answer not in logprobs or len(logprobs) < 2:
        return None
    return logprobs[answer] - max(v for k, v in logprobs.items() if k != answer)
