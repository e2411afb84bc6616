"""Open-answer scoring against hand-computed official scores, one test per normalisation rule."""

from __future__ import annotations

import random
import statistics

import pytest

from blindspot.answers import Parsed, parse_open, score_answer, score_official
from blindspot.answers.vqa import (
    evalai_process,
    process_digit_article,
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


def lmms_eval_vqav2(prediction: str, answers: list[str]) -> float:
    """lmms-eval's vqav2_process_results (tasks/vqav2/utils.py), transcribed step for step: the references are the
    dataset's answer dicts, each with its own answer_id, so "the other references" is leave-one-out."""
    docs = [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]
    res = evalai_process(prediction)
    for d in docs:
        d["answer"] = str(d["answer"]).replace("\n", " ").replace("\t", " ").strip()
    if len({d["answer"] for d in docs}) > 1:
        for d in docs:
            d["answer"] = process_digit_article(process_punctuation(str(d["answer"])))
        res = process_digit_article(process_punctuation(res))
    accuracies = []
    for gt in docs:
        others = [d for d in docs if d != gt]
        accuracies.append(min(1, len([d for d in others if d["answer"] == res]) / 3))
    return statistics.mean(accuracies)


POOL = ["Red", "red", "red.", "2", "two", "Two", "stop sign", "Stop Sign!", "st. louis", "3.5", "$4.99",
        "coca-cola", "coca cola", "man's", "man", "yes", "Yes", "no", "1,000", "1000", "the dog", "dog", "a dog",
        "dont", "don't"]  # fmt: skip


def test_vqav2_agrees_with_lmms_evals_current_scorer_on_random_reference_sets() -> None:
    rng = random.Random(0)
    cases = 0
    for _ in range(3000):
        refs = [rng.choice(POOL[: rng.randint(2, len(POOL))]) for _ in range(10)]
        if rng.random() < 0.2:
            refs = [refs[0]] * 10  # all ten agree: the references stay untouched
        prediction = rng.choice(POOL)
        assert vqav2_accuracy(prediction, refs) == pytest.approx(lmms_eval_vqav2(prediction, refs)), (prediction, refs)
        cases += 1
    assert cases == 3000


def test_a_single_reference_is_exact_match_where_lmms_eval_would_score_zero() -> None:
    # VQA v2 always has ten references; a configured benchmark with one gold answer gets exact match after
    # processing both (lmms-eval's loop has no "other" reference then and scores 0 for any answer).
    assert vqav2_accuracy("Red.", ["red"]) == 1.0
    assert lmms_eval_vqav2("Red.", ["red"]) == 0.0


@pytest.mark.parametrize(
    "answer",
    ["3.5", "$4.99", "12.5 cm", "€12.50", "www.google.com", "https://www.example.com/page", "U.S.A", "Dr. Pepper",
     "Washington, D.C", "version 2.0.1", "#1", "1,000", "7:45", "0.75", "St. Louis", "e.g. apples"],
)  # fmt: skip
@pytest.mark.parametrize("scorer", ["textvqa", "vqav2"])
def test_a_bare_answer_is_read_as_written_so_both_scores_agree(answer: str, scorer: str) -> None:
    """Decimals, prices, URLs and abbreviations survive the reader: the parsed score is the official one (the
    reader strips only lead-ins, markers, quotes and a trailing period, which a bare answer does not have)."""
    parsed = parse_open(answer)
    assert parsed.answer == answer
    for refs in ([answer.lower()] * 10, [answer] * 6 + ["other"] * 4, ["other"] * 10, [answer]):
        gold = refs[0]
        assert score_answer(parsed, gold, "open", refs, scorer)[1] == score_official(answer, gold, "open", refs, scorer)
