"""What every closed-form reader shares: cleaning a response, finding where its answer is stated, and telling a
refusal from a hedged answer.

The rules, in the order they apply (each has tests in ``tests/test_answers.py`` and cases in the corpus):

1. **Cleaning.** Reasoning blocks (``<think>...</think>``; an unclosed ``<think>`` is all reasoning) are dropped;
   markdown emphasis, headers and code ticks, LaTeX ``\\boxed{X}`` / ``\\text{X}`` and full-width characters are
   reduced to plain text.
2. **Where the answer is stated** (the *scope*), first match wins:
   - the format the prompt asked for (a benchmark may name one; VLMBias asks for ``{N}``);
   - after a *self-correction*: the text after the last correction cue that opens a clause ("Wait", "Actually",
     "Correction:", "On second thought", "On closer inspection", "Scratch that", "Hmm, no", "Sorry, I misread",
     "Let me reconsider"...): the last answer the model commits to counts ("The answer is A. Wait, actually, it's
     C." is C). A correction that names no answer, or several, leaves the answer before it standing ("B.
     Actually, I'm not sure." is B, hedged); one that only *asks* about another answer ("A. Wait, or is it C?")
     leaves the response undecided (unparsed). A cue inside a clause is no correction ("B. The car is actually
     blue.");
   - the text after the *last* explicit answer marker ("Final answer: C", "The answer is B", "Answer: b",
     "答案是B", "La respuesta es B", ...): a model that reasons first states its answer last;
   - for a reasoning-first response ("Let me think...", "First, ..."), its conclusion: the last sentence opened
     by "So", "Therefore", "Thus", "Hence" or "In conclusion", else its last line;
   - else the whole response.
3. **Refusals and hedges.** The response is cut into clauses (sentences, and at "but", "however", "though",
   semicolons; a period ends a sentence only before a space, so "3.5", "$4.99" and "U.S.A." stay whole). A clause
   such as "I can't see the image clearly" or "the image is too blurry" is a *refusal clause*. The answer is read
   from the other clauses; if one is found, it is the answer and the response is *hedged*. Only a response with no
   answer outside its refusal clauses is ``abstain``. Hedge words ("probably", "I think", "it looks like", "maybe",
   ...) next to an answer also set ``hedged``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

AMBIGUOUS: Final = "\0ambiguous"
"""What a reader returns for a scope that names two or more different answers."""
DOUBT: Final = "\0doubt"
"""What a reader returns for a scope that only asks about an answer ("Wait, or is it C?"): the response is
undecided, and no earlier scope may stand for it."""

# ------------------------------------------------------------------------------------------------ cleaning

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_THINK_OPEN = re.compile(r"<think>.*", re.S | re.I)
_BOXED = re.compile(r"\\(?:boxed|text|textbf|mathrm)\{([^{}]*)\}")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(.+?)\1", re.S)
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+", re.M)  # a header needs its space: "#1" is an answer


def clean(text: str) -> str:
    """Plain text of a response: no reasoning block, no markup, full-width characters folded."""
    text = unicodedata.normalize("NFKC", text)  # Ａ -> A, ： -> :, （Ｂ） -> (B)
    text = _THINK.sub(" ", text)
    text = _THINK_OPEN.sub(" ", text)
    text = text.replace("</think>", " ")
    for _ in range(3):
        text = _BOXED.sub(r"\1", text)
    for _ in range(2):
        text = _EMPHASIS.sub(r"\2", text)
    text = _HEADER.sub("", text)
    return text.replace("\u2019", "'").strip()


# ------------------------------------------------------------------------------------------------ markers

_MARKER = re.compile(
    r"(?:"
    r"\b(?:(?:the|my|your|our)\s+)?(?:final|correct|right|best|most\s+likely|predicted)?\s*"
    r"(?:answer|option|choice|response)(?:\s+(?:choice|option|letter))?\s*"
    r"(?:would\s+be|should\s+be|must\s+be|will\s+be|is|:|=|-)\s*"
    r"|\b(?:final\s+answer|answer)\s*[:=]?\s*(?=\(?[A-Za-z0-9]\)?\W*$)"
    r"|\bi(?:'ll|'d| will| would)?\s+(?:go with|choose|pick|select|say|guess)\s*(?:option\s*)?"
    r"|答案(?:应该是|應該是|是|为)?\s*[:：]?\s*|正确(?:答案|选项)(?:是|为)?\s*[:：]?\s*|选项?\s*(?=[A-Za-z]\b)"
    r"|\bla\s+(?:respuesta|réponse|risposta|resposta)\s+(?:correcta\s+|correcte\s+|corretta\s+)?(?:es|est|è|é)\s*:?\s*"
    r"|\b(?:respuesta|réponse|risposta|resposta)\s*:\s*"
    r"|\bdie\s+(?:richtige\s+)?antwort\s+ist\s*:?\s*|\bantwort\s*:\s*"
    r"|\bответ\s*:?\s*|\b正解は\s*|\b答え(?:は|:)\s*"
    r")",
    re.I,
)
"""Explicit answer markers; the text after the last one is where the answer is stated."""

_CONCLUSION = re.compile(
    r"(?:^|[.!?\n]\s*)(?:so|therefore|thus|hence|in conclusion|overall|in summary)\b[,:]?\s*", re.I
)
_REASONING_OPENERS = re.compile(
    r"^\s*(?:let(?:'s| me| us)\s+(?:think|analy[sz]e|look|examine|reason|break|count|see|check|consider)|"
    r"first(?:ly)?\b|step\s*1|to\s+"
    r"(?:answer|determine|find|solve|figure)|looking\s+at|okay|ok,|alright|hmm|we\s+need\s+to|i\s+need\s+to|"
    r"the\s+question\s+asks)",
    re.I,
)


_CORRECTION = re.compile(
    r"\b(?:wait|actually|correction|on second thoughts?|(?:on|upon) (?:a )?(?:closer|further|second) "
    r"(?:inspection|look|examination|reflection|glance)|(?:on|upon) reflection|looking (?:again|more closely|closer)|"
    r"thinking (?:again|about it more)|come to think of it|having looked again|re-?reading|"
    r"let me (?:correct|reconsider|re-?check|re-?examine|double[- ]check|look again|revise)|sorry|oops|"
    r"i (?:was wrong|made a mistake|misspoke|misread|stand corrected)|scratch that|hmm+,? no|no,? wait|"
    r"no,? actually|i mean)\b",
    re.I,
)
_CLAUSE_OPENING = re.compile(r"(?:^|[.!?;:,\n(—–-]|\.\.\.|…)\s*$")
"""What may precede a correction cue: the start of the response or of a clause ("Wait", ". Actually", "... no")."""


def after_last_correction(text: str) -> str | None:
    """The text after the last self-correction cue that opens a clause, or None where there is none."""
    tail = None
    for m in _CORRECTION.finditer(text):
        rest = text[m.end() :].lstrip(" ,:;.!—–-\n\t")
        if m.start() > 0 and _CLAUSE_OPENING.search(text[: m.start()]) and rest:
            tail = rest
    return tail


def after_last_marker(text: str) -> str | None:
    """The text after the last explicit answer marker, or None where there is none."""
    matches = [m for m in _MARKER.finditer(text) if m.end() < len(text)]
    return text[matches[-1].end() :] if matches else None


def conclusion(text: str) -> str | None:
    """A reasoning-first response's conclusion: its last 'So/Therefore/Thus ...' sentence, else its last line;
    None for a response that does not open with reasoning."""
    if not _REASONING_OPENERS.match(text):
        return None
    matches = list(_CONCLUSION.finditer(text))
    if matches:
        return text[matches[-1].end() :]
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if len(lines) > 1 else None


# ------------------------------------------------------------------------------------------------ refusals and hedges

_REFUSAL = re.compile(
    r"(?:"
    r"\b(?:can ?not|can't|cannot|could not|couldn't|unable to|not able to|impossible to|hard to|difficult to|"
    r"not possible to|no way to)\s+(?:clearly\s+|accurately\s+|reliably\s+|definitively\s+|confidently\s+)?"
    r"(?:see|tell|determine|identify|discern|make out|read|answer|say|know|view|be determined|be sure|judge|"
    r"distinguish|count|recogni[sz]e|provide|assess|decide|choose|pick|select)"
    r"|\b(?:no|not an?|without an?|missing(?: an?)?)\s+(?:image|picture|photo|visual|figure)s?\b"
    r"(?:\s+(?:is\s+)?(?:provided|attached|given|shown|available|included))?"
    r"|\b(?:image|picture|photo|figure|label|text|sign|writing|number|it|everything)\s+(?:is|seems|appears|looks)\s+"
    r"(?:to be\s+)?(?:too\s+|very\s+|heavily\s+|quite\s+)?(?:blurry|blurred|unclear|not clear|not visible|missing|"
    r"obscured|pixelated|out of focus|noisy|grey|gray|blank|illegible|unreadable|not legible|not readable)"
    r"|\btoo\s+(?:blurry|blurred|dark|unclear|pixelated|noisy)"
    r"|\bi'?m\s+(?:sorry|not (?:sure|certain|able))|\bi am (?:sorry|not (?:sure|certain|able))|\bi apologi[sz]e"
    r"|\bas an ai\b|\bno (?:clear|visible|discernible) (?:details|content|information|features)"
    r"|\bnot (?:possible|enough information) to (?:determine|tell|answer)|\binsufficient (?:information|visual|detail)"
    r"|\b(?:i )?don'?t know\b|\bunclear\b|\bnot (?:clear|visible|discernible)\b"
    r"|无法|看不清|不能确定|不确定"
    r")",
    re.I,
)
_HEDGE = re.compile(
    r"\b(?:probably|likely|possibly|perhaps|maybe|might|may be|seems?|appears?|looks? like|i think|i believe|"
    r"i guess|i'd guess|my best guess|best guess|not (?:entirely |completely |100% )?(?:sure|certain)|"
    r"hard to (?:tell|say)|difficult to (?:tell|say)|if i had to (?:guess|choose|pick)|presumably|"
    r"could be|uncertain)\b|可能|大概|似乎",
    re.I,
)
_CLAUSE_SPLIT = re.compile(
    r"(?<=[.!?;])\s+|(?<=[。！？；\n])\s*|\s*,?\s+\b(?:but|however|though|although|yet)\b,?\s*", re.I
)
"""Clause boundaries: sentence punctuation followed by a space (a period inside "3.5", "$4.99", "U.S.A." or
"www.example.com" is not one), CJK punctuation, line breaks, and "but" / "however" / "though"."""


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def is_hedged(text: str) -> bool:
    return bool(_HEDGE.search(text))


def clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_SPLIT.split(text) if c and c.strip()]


@dataclass(frozen=True)
class Scope:
    """Where a response states its answer."""

    text: str
    explicit: bool
    """After an explicit marker (or in the asked-for format): a refusal elsewhere does not override it."""
    correction: bool = False
    """After a self-correction: if it names no answer, or several, the scopes before it still count."""


def scopes(text: str) -> list[Scope]:
    """The places to read the answer from, most specific first."""
    out = []
    corrected = after_last_correction(text)
    if corrected is not None:
        out.append(Scope(corrected, True, correction=True))
    tail = after_last_marker(text)
    if tail is not None:
        out.append(Scope(tail, True))
    end = conclusion(text)
    if end is not None:
        out.append(Scope(end, False))
    out.append(Scope(text, False))
    return out


def without_refusals(text: str) -> tuple[str, bool]:
    """(the response without its refusal clauses, whether it had any)."""
    parts = clauses(text)
    kept = [c for c in parts if not is_refusal(c)]
    if len(kept) == len(parts):
        return text, False  # nothing set aside: the response as written
    return " ".join(kept), True
