"""Words as the closed-form readers compare them: lower-case, numbers in one spelling, plurals folded."""

from __future__ import annotations

import re

from blindspot.contracts.answers import number_word_value, parse_number

ARTICLES = frozenset({"a", "an", "the"})

STOP = frozenset(
    "a an the is are was were be been there this that these those it its of in on at to for with by from and or "
    "image picture photo shown visible any some do does did can could would should has have had what which who how "
    "you your i me my one here".split()
)
"""Words that carry no content of a question or an answer ("Is there a dog in the image?" is about "dog")."""

PREPOSITIONS = frozenset(
    "in on at near under behind above below beside inside of with from to by for over into onto around across along "
    "between next outside underneath against".split()
)

_POLAR_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+(?:[.,]\d+)?")


def tokens(text: str) -> list[str]:
    """Lower-case words (apostrophes kept: "isn't") and digit runs."""
    return [w.casefold() for w in _POLAR_TOKEN.findall(text)]


def singular(word: str) -> str:
    """A light plural fold, applied to the response and the options alike ("grapes" matches option "grape")."""
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-case words, numbers in one spelling (digits), plurals folded: "Twenty-one cats" -> ["21", "cat"]."""
    found = re.findall(r"[a-z0-9]+(?:[.,][0-9]+)?", text.casefold().replace("-", " "))
    out: list[str] = []
    i = 0
    while i < len(found):
        pair = " ".join(found[i : i + 2])
        if i + 1 < len(found) and number_word_value(pair) is not None:
            out.append(str(number_word_value(pair)))
            i += 2
            continue
        value = number_word_value(found[i])
        if value is None and re.fullmatch(r"[0-9]+(?:[.,][0-9]+)?", found[i]):
            number = parse_number(found[i])
            value = int(number) if number is not None and number.is_integer() else None
        out.append(str(value) if value is not None else singular(found[i]))
        i += 1
    return out


def content_words(text: str) -> set[str]:
    """The words of a text that carry content (not :data:`STOP`), singular."""
    return {w for w in words(text) if w not in STOP and len(w) > 1}
