"""Open-answer scoring exactly as the official VQA scorers do it.

Two published procedures, both reproduced rule for rule (their quirks included, so scores agree exactly):

- **EvalAI's answer processor** (the TextVQA challenge's, as MMF and lmms-eval ship it), applied to the
  prediction *and* every reference: lower-case; delete commas and question marks; split "'s" off its word; fold
  newlines and tabs into spaces; then punctuation: each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` is
  deleted where it touches a space (or where the text has a digit-comma-digit), else replaced by a space; periods
  not next to a digit are deleted (at most the first 32: the scorer passes ``re.UNICODE`` where ``re.sub`` takes
  its count); then words: the number words zero to ten (and "none") become digits, the articles a, an, the are
  dropped, and the contractions table restores apostrophes ("dont" -> "don't").
- **VQA v2** (``vqav2``: lmms-eval's current ``vqav2_process_results``, since its fix of July-August 2025): the
  prediction and every reference have newlines and tabs folded and are stripped, then *both* go through the
  punctuation and the words steps above, once. There is no lower-casing step of its own, no comma or question-mark
  deletion and no "'s" split (the words step lower-cases): "t-shirt" matches "t-shirt", "man's" matches "man's",
  "red,white" matches "red white".
- **VQA v2 as EvalAI ran it** (``vqav2_evalai``: lmms-eval's rule before that fix, after the VQA evaluation code):
  the prediction goes through the full EvalAI processor; the references only have newlines and tabs folded and are
  stripped; and only where the ten references are not all the same do both the references and the (already
  processed) prediction go through punctuation and words again. Where all ten references agree they are compared
  raw, so "t-shirt" (processed to "t shirt") scores 0 against ten "t-shirt", and "Red" references never match.

Accuracy is ``min(1, matches / 3)`` averaged over the leave-one-out subsets of the references; with a single
reference (a benchmark with one gold answer) it is exact match after processing both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

_CONTRACTION_PAIRS = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've|couldnt've couldn't've
didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've|hadn'tve hadn't've|hasnt hasn't
havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's|howd how'd|howll how'll|hows how's|Id've I'd've
I'dve I'd've|Im I'm|Ive I've|isnt isn't|itd it'd|itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am
mightnt mightn't|mightnt've mightn't've|mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've
neednt needn't|notve not've|oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at|'ow'sat 'ow's'at
shant shan't|shed've she'd've|she'dve she'd've|she's she's|shouldve should've|shouldnt shouldn't
shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd|somebodyd've somebody'd've
somebody'dve somebody'd've|somebodyll somebody'll|somebodys somebody's|someoned someone'd
someoned've someone'd've|someone'dve someone'd've|someonell someone'll|someones someone's|somethingd something'd
somethingd've something'd've|something'dve something'd've|somethingll something'll|thats that's|thered there'd
thered've there'd've|there'dve there'd've|therere there're|theres there's|theyd they'd|theyd've they'd've
they'dve they'd've|theyll they'll|theyre they're|theyve they've|twas 'twas|wasnt wasn't|wed've we'd've
we'dve we'd've|weve we've|werent weren't|whatll what'll|whatre what're|whats what's|whatve what've|whens when's
whered where'd|wheres where's|whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll
whos who's|whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't
wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll|yall'd've y'all'd've
y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've|you'dve you'd've|youll you'll|youre you're
youve you've
"""
CONTRACTIONS: dict[str, str] = dict(
    pair.split(" ") for line in _CONTRACTION_PAIRS.strip().splitlines() for pair in line.split("|")
)
"""The scorer's contraction table, as published (keys such as "Im" never match: words are lower-cased first)."""

NUMBER_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
              "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
               "!")  # fmt: skip
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: "(?!<=" is a lookahead, as published
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
_PERIOD_COUNT = re.UNICODE  # sic: passed where re.sub takes its count, so at most 32 periods are removed


def process_punctuation(text: str) -> str:
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    words = [NUMBER_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def evalai_process(text: str) -> str:
    """EvalAI's (TextVQA's) full answer processing."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def _leave_one_out(prediction: str, references: list[str]) -> float:
    if len(references) == 1:
        return float(prediction == references[0])
    scores = []
    for i in range(len(references)):
        matches = sum(ref == prediction for j, ref in enumerate(references) if j != i)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)


def textvqa_accuracy(prediction: str, references: list[str]) -> float:
    """TextVQA's soft accuracy: EvalAI processing on the prediction and every reference."""
    return _leave_one_out(evalai_process(prediction), [evalai_process(r) for r in references])


def _fold_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqav2_accuracy(prediction: str, references: list[str]) -> float:
    """VQA v2's soft accuracy as lmms-eval computes it today: both sides folded, then punctuation and words, once."""
    answer = process_digit_article(process_punctuation(_fold_whitespace(prediction)))
    refs = [process_digit_article(process_punctuation(_fold_whitespace(r))) for r in references]
    return _leave_one_out(answer, refs)


def vqav2_evalai_accuracy(prediction: str, references: list[str]) -> float:
    """VQA v2's soft accuracy by the older rule: references re-processed only where they are not all the same."""
    answer = evalai_process(prediction)
    refs = [_fold_whitespace(r) for r in references]
    if len(set(refs)) > 1:
        refs = [process_digit_article(process_punctuation(r)) for r in refs]
        answer = process_digit_article(process_punctuation(answer))
    if len(refs) == 1:
        return float(answer == evalai_process(refs[0]))
    return _leave_one_out(answer, refs)


OpenScorer = Literal["textvqa", "vqav2", "vqav2_evalai"]
SCORERS: dict[str, Callable[[str, list[str]], float]] = {
    "textvqa": textvqa_accuracy,
    "vqav2": vqav2_accuracy,
    "vqav2_evalai": vqav2_evalai_accuracy,
}
