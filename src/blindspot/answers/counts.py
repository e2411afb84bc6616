"""Reading counts: the number a response states.

The number in the format the prompt asked for (``{N}``) wins; else the first number in the scope, in digits or
words up to one hundred ("twenty-one"); else "none", "no <noun>", "zero" or "nothing" is 0. A first number given
with an alternative or as a range ("5 or 6", "3-4", "eight to nine") names two answers: ``AMBIGUOUS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from blindspot.answers.reading import AMBIGUOUS
from blindspot.contracts.answers import format_number, parse_number

NUMBER = re.compile(
    r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])"
    r"|\b(?:(?:a |one )?hundred|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
    r"(?:[-\s](?:one|two|three|four|five|six|seven|"
    r"eight|nine))?|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen)\b",
    re.I,
)
_BRACES = re.compile(r"\{\s*([^{}]{1,40}?)\s*\}")
_ZERO = re.compile(r"\b(?:none|nothing|zero|no\s+[a-z]+|not any)\b", re.I)
_ALTERNATIVE = re.compile(r"\s*(?:or|to|-|–)\s*", re.I)
"""What joins two numbers given as alternatives or a range: "5 or 6", "5 to 6", "5-6"."""
_CONCLUDING = re.compile(r"(?:^|[,;.!?\s])(?:so|therefore|thus|hence|that makes|which makes|making|leaving)\b", re.I)
_PARTITIVE = re.compile(r"\s+of\b", re.I)
""""one of them": a pronoun, no count."""
_CLOCK = re.compile(r"\d\s*[:h]\s*\d|[:h]\d")
"""A clock time ("3:15"): its numbers are no count."""


def braced_number(text: str) -> str | None:
    """The number in the last ``{...}`` of a response (the format VLMBias asks for), if any."""
    for inner in reversed(_BRACES.findall(text)):
        value = parse_number(inner)
        if value is None:
            match = NUMBER.search(inner)
            value = parse_number(match.group()) if match else None
        if value is not None:
            return format_number(value)
    return None


def stated_numbers(text: str) -> Iterator[tuple[re.Match[str], float]]:
    """Every number a text states (digits or words), with its value; clock times are left out."""
    for match in NUMBER.finditer(text):
        around = text[max(0, match.start() - 1) : match.end() + 2]
        value = parse_number(match.group())
        if value is not None and not _CLOCK.search(around):
            yield match, value


def names_two_numbers(text: str, match: re.Match[str], value: float) -> bool:
    """A number followed by an alternative or the end of a range ("5 or 6", "3-4")."""
    joiner = _ALTERNATIVE.match(text, match.end())
    other = NUMBER.match(text, joiner.end()) if joiner else None
    return other is not None and parse_number(other.group()) not in (None, value)


def _first_count(text: str) -> tuple[re.Match[str], float] | None:
    for match, value in stated_numbers(text):
        if not (match.group().lower() == "one" and _PARTITIVE.match(text, match.end())):
            return match, value
    return None


def read_count(text: str) -> str | None:
    """The number after the scope's last "so" / "therefore" / "that makes", else its first number (digits or
    words), else 0 for "none"/"no <noun>"; None where neither ("one of them" is no count)."""
    concluded = [m.end() for m in _CONCLUDING.finditer(text)]
    for source in ([text[concluded[-1] :]] if concluded else []) + [text]:
        found = _first_count(source)
        if found:
            match, value = found
            return AMBIGUOUS if names_two_numbers(source, match, value) else format_number(value)
    if _ZERO.search(text):
        return "0"
    return None
