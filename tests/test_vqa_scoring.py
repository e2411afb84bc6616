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
    vqav2_evalai_accuracy,
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


def test_the_older_vqav2_rule_differs_where_its_published_code_does() -> None:
    # The older rule leaves references untouched when all ten agree: a capitalised reference never matches.
    assert vqav2_evalai_accuracy("red", ["Red"] * 10) == 0.0
    assert textvqa_accuracy("red", ["Red"] * 10) == 1.0
    # It re-processes differing references without TextVQA's "'s" split, so "man's" only matches in TextVQA.
    refs = ["man's"] * 5 + ["man"] * 5
    assert textvqa_accuracy("man's", refs) == pytest.approx(1.0)
    assert vqav2_evalai_accuracy("man's", refs) == 0.0


@pytest.mark.parametrize(
    ("prediction", "references"),
    [
        ("t-shirt", ["t-shirt"] * 10),  # the prediction was processed to "t shirt", the ten references kept raw
        ("red,white", ["red white"] * 10),  # "red,white" became "redwhite" (commas deleted first)
        ("man's", ["man's"] * 10),  # "man's" became "man 's"
        ("Red", ["Red"] * 10),  # lower-cased prediction, raw capitalised references
    ],
)
def test_vqav2_scores_what_lmms_eval_scores_today_where_the_older_rule_scored_zero(
    prediction: str, references: list[str]
) -> None:
    assert vqav2_accuracy(prediction, references) == 1.0
    assert lmms_eval_vqav2(prediction, references) == 1.0
    assert vqav2_evalai_accuracy(prediction, references) == 0.0
    assert lmms_eval_vqav2_before_fix(prediction, references) == 0.0


def test_prefix_stripping_is_reading_not_scoring() -> None:
    refs = ["stop sign"] * 10
    text = "Answer: Stop sign."
    parsed = parse_open(text)
    assert parsed == Parsed("Stop sign", "parsed")
    assert score_answer(parsed, "stop sign", "open", refs) == ("correct", 1.0)
    assert score_official(text, "stop sign", "open", refs, "textvqa") == 0.0  # "answer: stop sign" matches none
    assert score_official("B", "B", "multiple_choice", None, "textvqa") is None


def _answer_dicts(answers: list[str]) -> list[dict[str, object]]:
    """The dataset's answer dicts, each with its own answer_id, so "the other references" is leave-one-out."""
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]


def _leave_one_out_of_dicts(docs: list[dict[str, object]], res: str) -> float:
    accuracies = []
    for gt in docs:
        others = [d for d in docs if d != gt]
        accuracies.append(min(1, len([d for d in others if d["answer"] == res]) / 3))
    return statistics.mean(accuracies)


def lmms_eval_vqav2(prediction: str, answers: list[str]) -> float:
    """lmms-eval's current vqav2_process_results (tasks/vqav2/utils.py, since "Fixed applying process_* twice on
    resAns" and "Fix accuracy computation for VQAv2", 2025), transcribed step for step."""
    docs = _answer_dicts(answers)
    res = prediction
    for d in docs:
        d["answer"] = str(d["answer"]).replace("\n", " ").replace("\t", " ").strip()
    res = res.replace("\n", " ").replace("\t", " ").strip()
    for d in docs:
        d["answer"] = process_punctuation(str(d["answer"]))
        d["answer"] = process_digit_article(str(d["answer"]))
    res = process_punctuation(res)
    res = process_digit_article(res)
    return _leave_one_out_of_dicts(docs, res)


def lmms_eval_vqav2_before_fix(prediction: str, answers: list[str]) -> float:
    """lmms-eval's vqav2_process_results before those fixes (EvalAI's processor on the prediction; the references
    re-processed, with the prediction again, only where they differ), transcribed step for step."""
    docs = _answer_dicts(answers)
    res = evalai_process(prediction)
    for d in docs:
        d["answer"] = str(d["answer"]).replace("\n", " ").replace("\t", " ").strip()
    if len({d["answer"] for d in docs}) > 1:
        for d in docs:
            d["answer"] = process_digit_article(process_punctuation(str(d["answer"])))
        res = process_digit_article(process_punctuation(res))
    return _leave_one_out_of_dicts(docs, res)


FAMILIES = [
    ["Red", "red", "red.", "RED", "the red one"],
    ["2", "two", "Two", "2.0", "2 "],
    ["stop sign", "Stop Sign!", "stop-sign", "a stop sign"],
    ["st. louis", "St. Louis", "st louis"],
    ["3.5", "$4.99", "4.99", "10:30"],
    ["coca-cola", "coca cola", "Coca-Cola", "cocacola"],
    ["man's", "man", "mans", "Man's"],
    ["yes", "Yes", "yes.", "no", "No"],
    ["1,000", "1000", "1 000", "3,000.5"],
    ["the dog", "dog", "a dog", "dogs"],
    ["dont", "don't", "Don't", "do not"],
    ["t-shirt", "T-Shirt", "t shirt", "tshirt"],
    ["red,white", "red white", "red, white", "red/white", "red and white"],
    ["what?", "what", "What"],
    ["left\n", "\tleft", "left", " Left "],
    ["McDonald's", "mcdonalds", "mcdonald's", "McDonalds"],
    ["(b)", "b", "B", "[b]"],
    ["one/two", "a/b 1,2", "hello - world", "hello world", "hello-world"],
    ["Ten", "ten", "10", "none", "0", "zero"],
]
"""Spellings of one answer: references and predictions are drawn mostly from one family, where the rules part."""


def random_cases(seed: int, n: int = 3000) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    everything = [s for family in FAMILIES for s in family]
    cases = []
    for _ in range(n):
        family = rng.choice(FAMILIES)
        refs = [rng.choice(family) if rng.random() < 0.85 else rng.choice(everything) for _ in range(10)]
        if rng.random() < 0.3:
            refs = [refs[0]] * 10  # all ten agree: where the two rules part most
        cases.append((rng.choice(family) if rng.random() < 0.9 else rng.choice(everything), refs))
    return cases


def test_vqav2_agrees_with_lmms_evals_current_scorer_on_random_reference_sets() -> None:
    cases = random_cases(0)
    for prediction, refs in cases:
        assert vqav2_accuracy(prediction, refs) == pytest.approx(lmms_eval_vqav2(prediction, refs)), (prediction, refs)
    # The two rules do part on these sets: agreeing with one transcription is not agreeing with both.
    parted = sum(lmms_eval_vqav2(p, r) != lmms_eval_vqav2_before_fix(p, r) for p, r in cases)
    assert len(cases) == 3000 and parted > 300, parted


def test_vqav2_evalai_agrees_with_the_older_rule_on_random_reference_sets() -> None:
    for prediction, refs in random_cases(1):
        expected = lmms_eval_vqav2_before_fix(prediction, refs)
        assert vqav2_evalai_accuracy(prediction, refs) == pytest.approx(expected), (prediction, refs)


def test_a_single_reference_is_exact_match_where_lmms_eval_would_score_zero() -> None:
    # VQA v2 always has ten references; a configured benchmark with one gold answer gets exact match after
    # processing both (lmms-eval's loop has no "other" reference then and scores 0 for any answer).
    assert vqav2_accuracy("Red.", ["red"]) == 1.0
    assert vqav2_evalai_accuracy("Red.", ["red"]) == 1.0
    assert lmms_eval_vqav2("Red.", ["red"]) == 0.0


@pytest.mark.parametrize(
    "answer",
    ["3.5", "$4.99", "12.5 cm", "€12.50", "www.google.com", "https://www.example.com/page", "U.S.A", "Dr. Pepper",
     "Washington, D.C", "version 2.0.1", "#1", "1,000", "7:45", "0.75", "St. Louis", "e.g. apples"],
)  # fmt: skip
@pytest.mark.parametrize("scorer", ["textvqa", "vqav2", "vqav2_evalai"])
def test_a_bare_answer_is_read_as_written_so_both_scores_agree(answer: str, scorer: str) -> None:
    """Decimals, prices, URLs and abbreviations survive the reader: the parsed score is the official one (the
    reader strips only lead-ins, markers, quotes and a trailing period, which a bare answer does not have)."""
    parsed = parse_open(answer)
    assert parsed.answer == answer
    for refs in ([answer.lower()] * 10, [answer] * 6 + ["other"] * 4, ["other"] * 10, [answer]):
        gold = refs[0]
        assert score_answer(parsed, gold, "open", refs, scorer)[1] == score_official(answer, gold, "open", refs, scorer)
