"""Open-answer scoring against hand-computed official scores, one test per normalisation rule."""

from __future__ import annotations

import pytest

from blindspot.answers import Parsed, parse_open, score_answer, score_official
from blindspot.answers.vqa import (
    evalai_process,
    process_punctuation,
    textvqa_accuracy,
    vqav2_accuracy,
)


@pytest.mark.parametrize(
    ("raw", "processed"),
    [
        ("none", "0"),  # the number table maps "none" to 0
        ("Two", "2"),
        ("ten", "10"),
        ("eleven", "eleven"),  # the table stops at ten
        ("The red car", "red car"),  # articles a, an, the dropped
        ("an apple a day", "apple day"),
        ("dont", "don't"),  # contractions table restores the apostrophe
        ("isnt it", "isn't it"),
        ("Im here", "im here"),  # keys with capitals ("Im") never match: words are lower-cased first
        ("coca-cola", "coca cola"),  # punctuation not next to a space becomes a space
        ("hello - world", "hello world"),  # next to a space it is deleted
        ("stop!", "stop"),
        ("1,000", "1000"),  # TextVQA deletes every comma first
        ("red, white", "red white"),
        ("what?", "what"),  # and every question mark
        ("mcdonald's", "mcdonald 's"),  # and splits "'s" off its word
        ("st. louis", "st louis"),  # a period not before a digit is deleted
        ("2.5", "2.5"),  # one before a digit stays
        ("line\none\tTwo", "line 1 2"),  # newlines and tabs are spaces
        ("  Yes  ", "yes"),
    ],
)
def test_evalai_processing(raw: str, processed: str) -> None:
    assert evalai_process(raw) == processed


def test_punctuation_rules_of_the_vqa_code() -> None:
    # A digit-comma-digit anywhere makes every punctuation mark be deleted rather than spaced.
    assert process_punctuation("3,000 a/b") == "3000 ab"
    assert process_punctuation("a/b") == "a b"
    # The period rule is applied at most 32 times (re.UNICODE lands in re.sub's count argument).
    assert process_punctuation("." * 40) == "." * 8


def test_soft_accuracy_leave_one_out_by_hand() -> None:
    refs = ["stop"] * 3 + ["stop sign"] * 7
    # 3 subsets drop a 'stop' (2 matches -> 2/3), 7 keep all three (-> 1): (3 * 2/3 + 7) / 10 = 0.9
    assert textvqa_accuracy("stop", refs) == pytest.approx(0.9)
    assert vqav2_accuracy("stop", refs) == pytest.approx(0.9)
    assert textvqa_accuracy("Stop Sign.", refs) == pytest.approx(1.0)
    two = ["yes", "yes"] + ["no"] * 8
    assert textvqa_accuracy("yes", two) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert textvqa_accuracy("cat", ["dog"]) == 0.0
    assert textvqa_accuracy("The Cat.", ["cat"]) == 1.0  # one reference: exact match after processing both


def test_textvqa_and_vqav2_differ_where_the_published_code_does() -> None:
    # VQA v2 leaves references untouched when all ten agree: a capitalised reference never matches.
    assert vqav2_accuracy("red", ["Red"] * 10) == 0.0
    assert textvqa_accuracy("red", ["Red"] * 10) == 1.0
    # VQA v2 re-processes differing references without TextVQA's "'s" split, so "man's" only matches in TextVQA.
    refs = ["man's"] * 5 + ["man"] * 5
    assert textvqa_accuracy("man's", refs) == pytest.approx(1.0)
    assert vqav2_accuracy("man's", refs) == 0.0


def test_prefix_stripping_is_reading_not_scoring() -> None:
    refs = ["stop sign"] * 10
    text = "Answer: Stop sign."
    parsed = parse_open(text)
    assert parsed == Parsed("Stop sign", "parsed")
    assert score_answer(parsed, "stop sign", "open", refs) == ("correct", 1.0)
    assert score_official(text, "stop sign", "open", refs, "textvqa") == 0.0  # "answer: stop sign" matches none
    assert score_official("B", "B", "multiple_choice", None, "textvqa") is None
