"""Reading a comparison between named options: "the chair is farther away, so the lamp is closer".

Where the question compares ("Which object is closer to the camera, the lamp or the chair?") and the response
answers in words rather than with a label, each comparative in the response that measures what the question asks
(closer, nearer, farther, further for distance; larger, bigger, smaller for size; taller, shorter; longer;
wider, narrower; heavier, lighter; higher, lower; older, younger; brighter, darker; faster, slower) says something
about the option it is said of: the option named last before it in its clause ("the lamp is closer"), or the one
after its "than" ("closer to the camera than the lamp", said of the other). The same direction as the question
names that option; the opposite direction names the other one, where there are exactly two. Statements after
the response's last "so", "therefore" or "which means" decide where the statements disagree; statements that still
disagree are ``AMBIGUOUS``. An option is named by the words that set it apart from the others ("The lamp is closer
to the camera." and "The chair is closer to the camera." are "lamp" and "chair").
"""

from __future__ import annotations

import re

from blindspot.answers.reading import AMBIGUOUS
from blindspot.answers.words import STOP, words
from blindspot.contracts.answers import LETTERS

_DIRECTIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "closer": (("distance", 1),), "nearer": (("distance", 1),),
    "farther": (("distance", -1),), "further": (("distance", -1),),
    "larger": (("size", 1),), "bigger": (("size", 1),), "greater": (("size", 1),),
    "smaller": (("size", -1),), "tinier": (("size", -1),),
    "taller": (("height", 1),), "shorter": (("height", -1), ("length", -1)),
    "longer": (("length", 1),), "wider": (("width", 1),), "narrower": (("width", -1),),
    "heavier": (("weight", 1),), "lighter": (("weight", -1),),
    "higher": (("elevation", 1),), "lower": (("elevation", -1),),
    "older": (("age", 1),), "younger": (("age", -1),),
    "brighter": (("brightness", 1),), "darker": (("brightness", -1),),
    "faster": (("speed", 1),), "slower": (("speed", -1),),
}  # fmt: skip
"""Comparatives: what each measures and in which direction."""
_COMPARATIVE = re.compile(r"\b(" + "|".join(_DIRECTIONS) + r")\b", re.I)
_CLAUSE = re.compile(
    r"[.!?;,\n]|\s[—–-]\s|\b(?:so|because|since|while|whereas|but|which|therefore|thus|hence|meaning|and)\b", re.I
)
_CONCLUDING = re.compile(r"\b(?:so|therefore|thus|hence|which means|meaning|that means)\b", re.I)


def option_names(options: list[str]) -> list[set[str]] | None:
    """The words that set each option apart from the others; None where an option has none."""
    sets = [{w for w in words(option) if w not in STOP} for option in options]
    names = [s - set().union(*(other for j, other in enumerate(sets) if j != i)) for i, s in enumerate(sets)]
    return names if all(names) else None


def _measure(question: str) -> tuple[str, int] | None:
    match = _COMPARATIVE.search(question)
    return _DIRECTIONS[match.group(1).lower()][0] if match else None


def _named_at(text: str, names: list[set[str]]) -> list[tuple[int, int]]:
    """(position, option index) of every option name in the text."""
    out = []
    for m in re.finditer(r"[A-Za-z0-9]+", text):
        found = words(m.group())
        for index, name in enumerate(names):
            if found and found[0] in name:
                out.append((m.start(), index))
    return out


def _clause_start(text: str, position: int) -> int:
    starts = [m.end() for m in _CLAUSE.finditer(text, 0, position)]
    return starts[-1] if starts else 0


def _votes(text: str, names: list[set[str]], measure: tuple[str, int]) -> list[tuple[int, int]]:
    """(position, option index the statement names as the answer) for each comparative said of an option."""
    dimension, sign = measure
    named = _named_at(text, names)
    votes = []
    for m in _COMPARATIVE.finditer(text):
        direction = dict(_DIRECTIONS[m.group(1).lower()]).get(dimension)
        if direction is None:
            continue
        start = _clause_start(text, m.start())
        subjects = [index for position, index in named if start <= position < m.start()]
        than = re.match(r"[^.;!?,\n]*?\bthan\s+(?:the\s+)?(\w+)", text[m.end() :], re.I)
        if subjects:
            subject, same = subjects[-1], direction == sign
        elif than and (after := [i for i, name in enumerate(names) if words(than.group(1))[:1] and
                                 words(than.group(1))[0] in name]):  # fmt: skip
            subject, same = after[0], direction != sign
        else:
            continue
        sentence = re.split(r"[.!?;\n]", text[m.end() :], maxsplit=1)[0]
        if any(re.search(r"\bor\s+(?:the\s+)?" + re.escape(w) + r"\b", sentence, re.I)
               for i, name in enumerate(names) if i != subject for w in name):  # fmt: skip
            votes.append((m.start(), -1))  # "the chair might be closer, or the lamp": alternatives
        elif same:
            votes.append((m.start(), subject))
        elif len(names) == 2:
            votes.append((m.start(), 1 - subject))
    return votes


def read_comparison(text: str, options: list[str], question: str) -> str | None:
    """The option a worded comparison names (module docstring), AMBIGUOUS, or None where it does not apply."""
    measure = _measure(question) if question else None
    names = option_names(options) if measure else None
    if measure is None or names is None:
        return None
    votes = _votes(text, names, measure)
    if not votes:
        return None
    if any(index < 0 for _, index in votes):
        return AMBIGUOUS
    if len({index for _, index in votes}) > 1:
        concluded = [m.end() for m in _CONCLUDING.finditer(text)]
        votes = [(p, i) for p, i in votes if concluded and p >= concluded[-1]]
        if len({index for _, index in votes}) != 1:
            return AMBIGUOUS
    return LETTERS[votes[0][1]]
