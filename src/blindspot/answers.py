"""Parsing model outputs and scoring them against gold answers: the one place that does either.

There is no random fallback anywhere (lmms-eval's MMMU parser and MMBench's extractor guess a random letter when
they cannot read an answer; that turns a parse failure into chance-level noise). A response that cannot be read is
``unparsed``; a refusal ("I cannot see the image") is ``abstain``. Both are outcomes of their own.

Outcomes: ``correct`` (score > 0), ``wrong`` (score 0), ``unparsed``, ``abstain``. Scores are 1/0, except VQA soft
accuracy for multi-reference open answers (TextVQA), which lies in [0, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

from blindspot.contracts.answers import LETTERS, OUTCOMES, Outcome, format_number, parse_number

__all__ = ["OUTCOMES", "Outcome", "Parsed", "parse_answer", "score_answer"]


@dataclass(frozen=True)
class Parsed:
    """A response read as an answer (``answer`` is None when unparsed or abstained)."""

    answer: str | None
    status: str  # "parsed" | "unparsed" | "abstain"


# ------------------------------------------------------------------------------------------------ refusals

_REFUSALS = re.compile(
    r"\b(?:"
    r"(?:can ?not|can't|cannot|unable to|not able to|impossible to|hard to|difficult to)\s+"
    r"(?:see|tell|determine|identify|discern|make out|read|answer|say|know|view|be determined)"
    r"|(?:no|not an?|without an?|missing)\s+(?:image|picture|photo|visual)s?\b(?:\s+(?:provided|attached|given))?"
    r"|(?:image|picture|photo)\s+is\s+(?:too\s+)?(?:blurry|blurred|unclear|not clear|not visible|missing)"
    r"|too\s+(?:blurry|blurred|dark|unclear)"
    r"|i'?m sorry|i apologi[sz]e|as an ai"
    r"|not (?:possible|enough information) to (?:determine|tell|answer)"
    r"|insufficient (?:information|visual)"
    r")",
    re.IGNORECASE,
)
_EXPLICIT_ANSWER = re.compile(r"\b(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)\s*(?:is|:)\s*", re.I)


def is_refusal(text: str) -> bool:
    return bool(_REFUSALS.search(text))


def _explicit_tail(text: str) -> str | None:
    """What follows the last 'answer is' / 'answer:' marker, if any."""
    matches = list(_EXPLICIT_ANSWER.finditer(text))
    return text[matches[-1].end() :] if matches else None


def _finish(text: str, answer: str | None) -> Parsed:
    """A refusal wins over an answer read from loose text, but not over an explicit 'the answer is X'."""
    if is_refusal(text) and (answer is None or _explicit_tail(text) is None):
        return Parsed(None, "abstain")
    return Parsed(answer, "parsed") if answer is not None else Parsed(None, "unparsed")


# ------------------------------------------------------------------------------------------------ multiple choice

_STANDALONE_LETTER = re.compile(r"^\W*\(?([A-Z])\)?\W*$")
_LEADING_LETTER = re.compile(r"^\W*(?:\(([A-Z])\)|([A-Z])(?:[.:)\]]|\s*$|\s+[-–—]\s))")
_MARKED_LETTER = re.compile(r"^\W*\(?([A-Z])\)?(?![a-z])")
_BRACKETED_LETTER = re.compile(r"\(([A-Z])\)")


def _normalise_words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+(?:[.,][0-9]+)?", text.casefold()))


def _option_text_match(text: str, options: list[str]) -> str | None:
    """The single option whose full text occurs in the response as whole words (longest match wins where one
    option's text contains another's); None when none or several unrelated options occur."""
    haystack = f" {_normalise_words(text)} "
    found = []
    for index, option in enumerate(options):
        needle = _normalise_words(option)
        if needle and f" {needle} " in haystack:
            found.append((index, needle))
    if not found:
        return None
    found = [(i, n) for i, n in found if not any(n != m and n in m for _, m in found)]  # drop contained matches
    return LETTERS[found[0][0]] if len(found) == 1 else None


def parse_choice(text: str, options: list[str]) -> Parsed:
    """Read a multiple-choice response as an option letter.

    In order: a bare letter ("B", "(B)", "B."); an explicit marker ("The answer is B", "Answer: (C)"); a leading
    letter followed by punctuation ("B. green", "(B) green"); a single bracketed letter anywhere; the text of exactly
    one option. "A cat sits on the mat" is not option A: a capital letter followed by a lowercase word is an
    article. Letters beyond the options are ignored.
    """
    valid = set(LETTERS[: len(options)])
    stripped = text.strip()

    def valid_letter(match: re.Match[str] | None) -> str | None:
        letter = next((g for g in match.groups() if g), None) if match else None
        return letter if letter in valid else None

    if letter := valid_letter(_STANDALONE_LETTER.match(stripped)):
        return _finish(text, letter)
    tail = _explicit_tail(stripped)
    if tail is not None:
        letter = valid_letter(_MARKED_LETTER.match(tail.strip())) or _option_text_match(tail, options)
        if letter:
            return Parsed(letter, "parsed")
    if letter := valid_letter(_LEADING_LETTER.match(stripped)):
        return _finish(text, letter)
    bracketed = {m for m in _BRACKETED_LETTER.findall(stripped) if m in valid}
    if len(bracketed) == 1:
        return _finish(text, bracketed.pop())
    return _finish(text, _option_text_match(stripped, options))


# ------------------------------------------------------------------------------------------------ yes / no

_YES_WORDS = {"yes", "yeah", "yep", "true", "correct"}
_NO_WORDS = {"no", "nope", "false", "incorrect"}


def parse_yes_no(text: str) -> Parsed:
    """Read a yes/no response: the first word if it is yes/no, else the only polarity word present.

    "There is no dog" has a 'no' but is a sentence, not an answer; with no leading yes/no and exactly one kind of
    polarity word it is read as that word. Both kinds present, or neither, is unparsed."""
    tail = _explicit_tail(text)
    scope = tail if tail is not None else text
    words = re.findall(r"[a-z]+", scope.casefold())
    if words and words[0] in _YES_WORDS | _NO_WORDS:
        answer = "yes" if words[0] in _YES_WORDS else "no"
        return Parsed(answer, "parsed") if tail is not None else _finish(text, answer)
    has_yes = any(w in {"yes", "yeah", "yep"} for w in words)
    has_no = any(w in {"no", "nope"} for w in words)
    if has_yes != has_no:
        return _finish(text, "yes" if has_yes else "no")
    return _finish(text, None)


# ------------------------------------------------------------------------------------------------ numbers

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])")


def parse_count(text: str) -> Parsed:
    """Read a number: after an explicit marker if there is one, else the first number (digits or a number word)."""
    tail = _explicit_tail(text)
    scope = tail if tail is not None else text
    candidates: list[tuple[int, float]] = []
    for match in _NUMBER.finditer(scope):
        value = parse_number(match.group())
        if value is not None:
            candidates.append((match.start(), value))
    for match in re.finditer(r"[A-Za-z]+", scope):
        value = parse_number(match.group())
        if value is not None:
            candidates.append((match.start(), value))
    if not candidates:
        return _finish(text, None)
    answer = format_number(min(candidates)[1])
    return Parsed(answer, "parsed") if tail is not None else _finish(text, answer)


# ------------------------------------------------------------------------------------------------ open answers (EvalAI)

_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itll": "it'll",
    "lets": "let's",
    "mightnt": "mightn't",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "shant": "shan't",
    "shed": "she'd",
    "shes": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "thered": "there'd",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "wasnt": "wasn't",
    "wed": "we'd",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "yall": "y'all",
    "youd": "you'd",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
_DIGITS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def normalize_vqa(text: str) -> str:
    """EvalAI's VQA answer normalisation: punctuation, number words to digits, articles and contractions."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD_STRIP.sub("", out)
    words = []
    for word in out.lower().split():
        word = _DIGITS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def vqa_soft_accuracy(prediction: str, references: list[str]) -> float:
    """VQA accuracy: min(#humans who gave the answer / 3, 1), averaged over the leave-one-out subsets."""
    pred = normalize_vqa(prediction)
    refs = [normalize_vqa(r) for r in references]
    if len(refs) == 1:
        return float(pred == refs[0])
    scores = []
    for others in combinations(range(len(refs)), len(refs) - 1):
        matches = sum(refs[i] == pred for i in others)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)


def parse_open(text: str) -> Parsed:
    """An open answer is the response's first line, without a leading 'Answer:' marker or trailing period."""
    tail = _explicit_tail(text)
    line = (tail if tail is not None else text).strip().splitlines()
    answer = line[0].strip().rstrip(".") if line else ""
    return _finish(text, answer or None)


# ------------------------------------------------------------------------------------------------ dispatch


def parse_answer(text: str, answer_type: str, options: list[str] | None) -> Parsed:
    if answer_type == "multiple_choice":
        return parse_choice(text, options or [])
    if answer_type == "yes_no":
        return parse_yes_no(text)
    if answer_type == "count":
        return parse_count(text)
    if answer_type == "open":
        return parse_open(text)
    raise ValueError(f"unknown answer type '{answer_type}'")


def score_answer(
    parsed: Parsed, gold: str, answer_type: str, references: list[str] | None = None
) -> tuple[Outcome, float]:
    """(outcome, score) of a parsed response against the canonical gold answer."""
    if parsed.status == "abstain":
        return "abstain", 0.0
    if parsed.status != "parsed" or parsed.answer is None:
        return "unparsed", 0.0
    if answer_type == "open":
        score = vqa_soft_accuracy(parsed.answer, references or [gold])
    elif answer_type == "count":
        score = float(parse_number(parsed.answer) == parse_number(gold))
    else:
        score = float(parsed.answer == gold)
    return ("correct" if score > 0 else "wrong"), score


def identity_key(answer: str | None, answer_type: str) -> str | None:
    """What answer identity compares: open answers as the scorer normalises them ("Red" and "red" are one answer),
    others as parsed (already canonical)."""
    if answer is None:
        return None
    return normalize_vqa(answer) if answer_type == "open" else answer
