"""Reading model outputs and scoring them against gold answers: the one place that does either.

There is no random fallback anywhere (lmms-eval's MMMU parser and MMBench's extractor guess a random letter when
they cannot read an answer; that turns a parse failure into chance-level noise) and no judge model. A response
that cannot be read is ``unparsed``; a response that declines and states no answer is ``abstain``. An answer given
with a refusal or a hedge beside it ("I can't see the image clearly, but it looks blue") is read as the answer,
with ``hedged`` set. How each answer type is read: :mod:`blindspot.answers.reading` (where the answer is stated,
self-corrections, refusals, hedges), :mod:`blindspot.answers.choice` (multiple choice: labels and their stance,
option texts; :mod:`blindspot.answers.comparison` for comparisons answered in words), :mod:`blindspot.answers.yes_no`
and :mod:`blindspot.answers.counts`; open answers are scored exactly as the official VQA scorers do
(:mod:`blindspot.answers.vqa`). Where a careful person could not tell which answer a response gives, the reading
is ``unparsed``: a wrong reading is worse than none.

Outcomes: ``correct`` (score > 0), ``wrong`` (score 0), ``unparsed``, ``abstain``. Scores are 1/0, except VQA soft
accuracy for multi-reference open answers (TextVQA), which lies in [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from blindspot.answers.choice import doubted_after, possible_besides, read_choice
from blindspot.answers.counts import braced_number, read_count
from blindspot.answers.reading import AMBIGUOUS, DOUBT, Scope, clean, is_hedged, is_refusal, scopes, without_refusals
from blindspot.answers.vqa import SCORERS, evalai_process, textvqa_accuracy
from blindspot.answers.yes_no import read_yes_no
from blindspot.contracts.answers import OUTCOMES, AnswerType, Outcome, parse_number

__all__ = ["OUTCOMES", "Outcome", "Parsed", "is_refusal", "parse_answer", "score_answer", "score_official"]


@dataclass(frozen=True)
class Parsed:
    """A response read as an answer (``answer`` is None when unparsed or abstained)."""

    answer: str | None
    status: str  # "parsed" | "unparsed" | "abstain"
    hedged: bool = False
    """An answer given beside a refusal or a hedge ("probably", "it looks like"), or whose label and option text
    disagree."""


def _read(text: str, read_scope: Callable[[str], str | None], formatted: str | None = None) -> Parsed:
    """Read one response with one scope reader (see the rules in :mod:`blindspot.answers.reading`)."""
    cleaned = clean(text)
    if formatted is not None:
        return Parsed(formatted, "parsed", is_hedged(cleaned) or is_refusal(cleaned))
    refused_anywhere = is_refusal(cleaned)
    for scope in scopes(cleaned):
        body, refused = (scope.text, False) if scope.explicit else without_refusals(scope.text)
        answer = read_scope(body)
        if answer == AMBIGUOUS and scope.correction:
            continue  # a correction that names several answers leaves the one before it standing
        if answer in (AMBIGUOUS, DOUBT):
            break
        if answer is not None:
            return Parsed(answer, "parsed", refused or refused_anywhere or is_hedged(_hedge_scope(scope, cleaned)))
    return Parsed(None, "abstain") if refused_anywhere else Parsed(None, "unparsed")


def _hedge_scope(scope: Scope, cleaned: str) -> str:
    return scope.text if scope.explicit else cleaned


def parse_choice(text: str, options: list[str], question: str = "") -> Parsed:
    conflict = False

    def scope_reader(body: str) -> str | None:
        nonlocal conflict
        reading = read_choice(body, options, question)
        conflict = reading.conflict
        return reading.answer

    parsed = _read(text, scope_reader)
    if parsed.answer is None:
        return parsed
    if doubted_after(clean(text), options, parsed.answer):
        return Parsed(None, "unparsed")
    hedged = parsed.hedged or conflict or possible_besides(clean(text), options, parsed.answer)
    return Parsed(parsed.answer, parsed.status, hedged)


def parse_yes_no(text: str, question: str = "") -> Parsed:
    return _read(text, lambda body: read_yes_no(body, question))


def parse_count(text: str) -> Parsed:
    return _read(text, read_count, braced_number(clean(text)))


# ------------------------------------------------------------------------------------------------ open answers

_OPEN_LEAD_INS = re.compile(
    r"^[\s\"'“”‘’:,;.!?*>]*(?:(?:i think|i believe|probably|perhaps|maybe)\s+)?"
    r"(?:(?:(?:it|this|that) is (?:called|named)|it(?:'s| is)|this is|that is|these are|they are|"
    r"it (?:looks|seems|appears) (?:like|to be)|the image shows|it (?:says|reads|costs)|"
    r"(?:the|this|that)(?: \w+){1,2} (?:is|are|says|reads))\s+)?",
    re.I,
)


def _open_line(body: str) -> str | None:
    """The first line of a scope, without a leading "It is" / "It looks like", quotes or a trailing period."""
    lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
    if not lines:
        return None
    answer = _OPEN_LEAD_INS.sub("", lines[0]).strip().rstrip(".").strip("\"'“”").rstrip(".").strip()
    return answer or None


def parse_open(text: str) -> Parsed:
    """An open answer: after an answer marker (or a reasoning-first response's conclusion), the first line, without
    a leading "It is" / "It looks like", quotes or a trailing period. This prefix stripping is *reading*, separate
    from official scoring: predictions keep both ``score`` (of this reading) and ``score_official`` (the official
    scorer on the raw response)."""
    return _read(text, _open_line)


# ------------------------------------------------------------------------------------------------ dispatch


def parse_answer(text: str, answer_type: AnswerType, options: list[str] | None, question: str = "") -> Parsed:
    if answer_type == "multiple_choice":
        return parse_choice(text, options or [], question)
    if answer_type == "yes_no":
        return parse_yes_no(text, question)
    if answer_type == "count":
        return parse_count(text)
    if answer_type == "open":
        return parse_open(text)
    raise ValueError(f"unknown answer type '{answer_type}'")


def score_answer(
    parsed: Parsed, gold: str, answer_type: AnswerType, references: list[str] | None = None, scorer: str = "textvqa"
) -> tuple[Outcome, float]:
    """(outcome, score) of a parsed response against the canonical gold answer."""
    if parsed.status == "abstain":
        return "abstain", 0.0
    if parsed.status != "parsed" or parsed.answer is None:
        return "unparsed", 0.0
    if answer_type == "open":
        score = SCORERS[scorer](parsed.answer, references or [gold])
    elif answer_type == "count":
        score = float(parse_number(parsed.answer) == parse_number(gold))
    else:
        score = float(parsed.answer == gold)
    return ("correct" if score > 0 else "wrong"), score


def score_official(
    text: str, gold: str, answer_type: AnswerType, references: list[str] | None, scorer: str
) -> float | None:
    """The official scorer on the raw response (open answers only; None for closed forms, which have no official
    raw-text scorer here)."""
    if answer_type != "open":
        return None
    return SCORERS[scorer](text, references or [gold])


def normalize_vqa(text: str) -> str:
    """EvalAI's answer processing (the TextVQA scorer's)."""
    return evalai_process(text)


def vqa_soft_accuracy(prediction: str, references: list[str]) -> float:
    return textvqa_accuracy(prediction, references)


def identity_key(answer: str | None, answer_type: AnswerType) -> str | None:
    """What answer identity compares: open answers as the scorer normalises them ("Red" and "red" are one answer),
    others as parsed (already canonical)."""
    if answer is None:
        return None
    return normalize_vqa(answer) if answer_type == "open" else answer
