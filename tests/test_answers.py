"""Parsers on real-looking model outputs, refusals and verbose answers; scoring; no random fallback."""

from __future__ import annotations

import pytest

from blindspot.answers import (
    Parsed,
    normalize_vqa,
    parse_answer,
    parse_choice,
    parse_count,
    parse_open,
    parse_yes_no,
    score_answer,
    vqa_soft_accuracy,
)

OPTIONS = ["a cat", "a dog", "a red bus", "a bus"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(C)", "C"),
        ("D.", "D"),
        (" A\n", "A"),
        ("The answer is B.", "B"),
        ("The correct answer is (C) a red bus.", "C"),
        ("Answer: D", "D"),
        ("B. a dog", "B"),
        ("(B) a dog", "B"),
        ("C) a red bus", "C"),
        ("Looking at the image, the animal is barking, so (B) is right.", "B"),
        ("It is a red bus.", "C"),  # option text; 'a bus' is contained in 'a red bus'
        ("I think it shows a dog playing.", "B"),
        ("I cannot see the image clearly, but the answer is A.", "A"),  # explicit answer beats the refusal
    ],
)
def test_choice_reads_the_answer(text: str, expected: str) -> None:
    parsed = parse_choice(text, OPTIONS)
    assert (parsed.answer, parsed.status) == (expected, "parsed")


@pytest.mark.parametrize(
    "text",
    [
        "A cat is sitting on a mat.",  # 'A' the article... and 'a cat' matches option A's text!
    ],
)
def test_article_a_is_not_read_as_a_letter_but_text_can_match(text: str) -> None:
    assert parse_choice(text, OPTIONS) == Parsed("A", "parsed")  # via the option text, not the article
    assert parse_choice("A horse is running.", OPTIONS).status == "unparsed"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "E",  # beyond the four options
        "Either (A) or (B), hard to say",
        "I see both a cat and a dog.",
        "hmm",
    ],
)
def test_choice_unparsed_never_guesses(text: str) -> None:
    assert parse_choice(text, OPTIONS).answer is None


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, I cannot see the image.",
        "The image is too blurry to determine the answer.",
        "There is no image provided.",
        "I am unable to tell what is in the picture.",
    ],
)
def test_refusals_abstain(text: str) -> None:
    assert parse_choice(text, OPTIONS) == Parsed(None, "abstain")
    assert parse_yes_no(text) == Parsed(None, "abstain")
    assert parse_count(text) == Parsed(None, "abstain")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("yes.", "yes"),
        ("No, there is no dog in the image.", "no"),
        ("Yes, there is a giraffe standing near the tree.", "yes"),
        ("There is no dog in the image.", "no"),
        ("The answer is no.", "no"),
        ("YES", "yes"),
    ],
)
def test_yes_no(text: str, expected: str) -> None:
    parsed = parse_yes_no(text)
    assert (parsed.answer, parsed.status) == (expected, "parsed")


@pytest.mark.parametrize("text", ["Maybe", "It could be yes or no.", "The bus is red."])
def test_yes_no_unparsed(text: str) -> None:
    assert parse_yes_no(text) == Parsed(None, "unparsed")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", "3"),
        ("There are three cats.", "3"),
        ("I count 12 people.", "12"),
        ("Answer: 2.5", "2.5"),
        ("about 1,200 birds", "1200"),
        ("The answer is 4 (I see 3 on the left).", "4"),
    ],
)
def test_count(text: str, expected: str) -> None:
    parsed = parse_count(text)
    assert (parsed.answer, parsed.status) == (expected, "parsed")


def test_open_and_vqa_soft_accuracy() -> None:
    assert parse_open("Answer: Stop sign.\nIt is red.") == Parsed("Stop sign", "parsed")
    assert normalize_vqa("The Two dogs!") == "2 dogs"
    assert normalize_vqa("isnt it") == "isn't it"
    refs = ["stop"] * 3 + ["stop sign"] * 7
    # 3 of the 10 leave-one-out subsets drop a 'stop' (2 matches -> 2/3), the other 7 keep all 3 (-> 1)
    assert vqa_soft_accuracy("stop", refs) == pytest.approx((3 * (2 / 3) + 7) / 10)
    assert vqa_soft_accuracy("Stop Sign.", refs) == pytest.approx(1.0)
    two = ["yes", "yes"] + ["no"] * 8
    # leave-one-out: 2 subsets drop a 'yes' (1 match -> 1/3), 8 keep both (2 matches -> 2/3)
    assert vqa_soft_accuracy("yes", two) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_soft_accuracy("cat", ["dog"]) == 0.0


def test_scoring_outcomes() -> None:
    assert score_answer(Parsed("B", "parsed"), "B", "multiple_choice") == ("correct", 1.0)
    assert score_answer(Parsed("A", "parsed"), "B", "multiple_choice") == ("wrong", 0.0)
    assert score_answer(Parsed(None, "unparsed"), "B", "multiple_choice") == ("unparsed", 0.0)
    assert score_answer(Parsed(None, "abstain"), "yes", "yes_no") == ("abstain", 0.0)
    assert score_answer(Parsed("3", "parsed"), "3", "count") == ("correct", 1.0)
    assert score_answer(Parsed("3.0", "parsed"), "3", "count") == ("correct", 1.0)
    outcome, score = score_answer(Parsed("stop", "parsed"), "stop sign", "open", ["stop", "stop sign", "stop"])
    assert outcome == "correct" and 0 < score <= 1


def test_dispatch_rejects_unknown_types() -> None:
    assert parse_answer("B", "multiple_choice", OPTIONS).answer == "B"
    with pytest.raises(ValueError, match="unknown answer type"):
        parse_answer("B", "essay", None)
