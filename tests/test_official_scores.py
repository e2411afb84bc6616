"""Each official scorer against values computed by hand, and the bootstrap weights against explicit resamples."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from blindspot.benchmarks import get_benchmark
from blindspot.benchmarks.mmmu import eval_open, open_predictions
from blindspot.benchmarks.official import OfficialInput, binary_scores, official_rows
from blindspot.benchmarks.vlmbias import vlmbias_match


def frame(**columns: list) -> OfficialInput:
    """One condition's rows; metadata keys are the columns named meta_<key>."""
    n = len(next(iter(columns.values())))
    meta = [{k.removeprefix("meta_"): v[i] for k, v in columns.items() if k.startswith("meta_")} for i in range(n)]
    plain = {k: v for k, v in columns.items() if not k.startswith("meta_")}
    data = pl.DataFrame(plain).with_columns(pl.Series("meta", meta, dtype=pl.Object))
    return OfficialInput(data, np.ones((1, n)))


def point(name: str, data: OfficialInput) -> dict[str, float]:
    spec = get_benchmark(name)
    assert spec.official is not None
    return {k: float(v[0]) for k, v in spec.official(data).items()}


def test_pope_scores_and_yes_ratio_by_hand() -> None:
    # gold:      y y y n n n n ; predicted: y y n y y n (unparsed)
    # TP 2, FN 1, FP 2, TN 1; the unparsed answer is right for neither class
    data = frame(
        parsed=["yes", "yes", "no", "yes", "yes", "no", None],
        answer=["yes", "yes", "yes", "no", "no", "no", "no"],
        meta_category=["adversarial"] * 3 + ["random"] * 4,
    )
    scores = point("pope", data)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert scores["yes_ratio"] == pytest.approx(4 / 7)
    assert scores["accuracy"] == pytest.approx(3 / 7)  # TP + TN; the unparsed answer counts as wrong
    assert scores["accuracy_adversarial"] == pytest.approx(2 / 3)
    assert scores["accuracy_random"] == pytest.approx(1 / 4)
    assert np.isnan(scores["f1_random"])  # no "yes" question: recall is undefined, not 0


def test_hallusionbench_figure_and_question_pairs_by_hand() -> None:
    # set 1: figure 0 asks q0, q1; figure 1 asks q0, q1. Wrong: both questions about figure 1.
    rows = [("0", "0", 1.0), ("0", "1", 1.0), ("1", "0", 0.0), ("1", "1", 0.0)]
    data = frame(
        score=[r[2] for r in rows],
        meta_category=["VD"] * 4,
        meta_subcategory=["chart"] * 4,
        meta_set_id=["1"] * 4,
        meta_figure_id=[r[0] for r in rows],
        meta_question_id=[r[1] for r in rows],
    )
    scores = point("hallusionbench", data)
    assert scores["aAcc"] == pytest.approx(2 / 4)
    assert scores["fAcc"] == pytest.approx(1 / 2)  # figure 0 all right, figure 1 not
    assert scores["qAcc"] == pytest.approx(0.0)  # neither question is right with both figures


def test_pope_unparsed_answers_on_both_classes() -> None:
    """An unread answer to a "yes" question is a missed positive (recall), to a "no" question a missed negative;
    neither is a "yes" (precision, yes-ratio), and both are wrong (accuracy)."""
    data = frame(parsed=[None, "yes", None, "no"], answer=["yes", "yes", "no", "no"], meta_category=["random"] * 4)
    scores = point("pope", data)
    assert (scores["precision"], scores["recall"]) == pytest.approx((1.0, 1 / 2))
    assert scores["accuracy"] == pytest.approx(2 / 4) and scores["yes_ratio"] == pytest.approx(1 / 4)
    assert scores["f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_hallusionbench_groups_never_merge_across_sets() -> None:
    """Two sets reuse the same figure and question ids: a figure or question pair is (category, subcategory, set,
    id), so set 2's wrong answer leaves set 1's pairs right."""
    rows = [("1", "0", "0", 1.0), ("1", "0", "1", 1.0), ("1", "1", "0", 1.0), ("1", "1", "1", 1.0),
            ("2", "0", "0", 1.0), ("2", "0", "1", 1.0), ("2", "1", "0", 0.0), ("2", "1", "1", 1.0)]  # fmt: skip
    data = frame(
        score=[r[3] for r in rows],
        meta_category=["VD"] * 8,
        meta_subcategory=["chart"] * 8,
        meta_set_id=[r[0] for r in rows],
        meta_figure_id=[r[1] for r in rows],
        meta_question_id=[r[2] for r in rows],
    )
    scores = point("hallusionbench", data)
    assert scores["aAcc"] == pytest.approx(7 / 8)
    assert scores["fAcc"] == pytest.approx(3 / 4)  # set 2's figure 1 alone is not all right
    assert scores["qAcc"] == pytest.approx(3 / 4)  # set 2's question 0 alone is not right with both figures


def test_hrbench_averages_cycles_not_items() -> None:
    # cycle a: 3 items, 3 right; cycle b: 1 item, wrong -> (1 + 0) / 2 = 0.5, where the item mean is 0.75
    data = frame(
        score=[1.0, 1.0, 1.0, 0.0],
        meta_cycle_category=["a", "a", "a", "b"],
        meta_category=["single", "single", "cross", "cross"],
    )
    scores = point("hrbench", data)
    assert scores["average"] == pytest.approx(0.5)
    assert scores["single"] == pytest.approx(1.0)
    assert scores["cross"] == pytest.approx((1.0 + 0.0) / 2)


def test_vlmbias_match_and_bias_ratio_by_hand() -> None:
    assert vlmbias_match("I count {4} stripes.", "4")
    assert vlmbias_match("The answer is {Yes}", "yes")
    assert not vlmbias_match("{3}", "4")
    assert vlmbias_match("There are 4 stripes", "4")  # no braces: the whole response, digits only
    assert vlmbias_match("first {3}, on reflection {4}", "4")  # the last braces
    assert not vlmbias_match("{No}", "Yes")
    # the last braced value, whatever comes before or around it
    assert vlmbias_match("Counting: {3}? No, {4}.\nFinal answer: { 4 }", "4")
    assert not vlmbias_match("{4} at first, but the final count is {5}", "4")
    assert vlmbias_match("{{12}}", "12") and not vlmbias_match("{12}", "1")
    assert vlmbias_match("There are {12} lines, not 1 or 2", "12")
    data = frame(
        raw_text=["{4}", "{3}", "{Yes}", "maybe"],
        meta_ground_truth=["4", "4", "No", "5"],
        meta_expected_bias=["3", "3", "Yes", "4"],
    )
    scores = point("vlmbias", data)
    assert scores["accuracy"] == pytest.approx(1 / 4)
    assert scores["bias_ratio"] == pytest.approx(2 / 4)


def test_mmmu_open_answers_by_its_rules() -> None:
    assert eval_open(["12"], open_predictions("The area is 12.0 square units."))
    assert eval_open(["12", "12.0"], open_predictions("so the result = 12.004"))  # rounded to 2 decimals: 12.0
    assert not eval_open(["12"], open_predictions("The area is 13."))
    assert eval_open(["a square"], open_predictions("They show a square."))
    assert not eval_open(["a square"], open_predictions("A circle."))
    assert eval_open(["1,200"], open_predictions("The total is 1,200 dollars"))


def test_mmbench_circular_accuracy_by_hand() -> None:
    # question 0 has two circular copies (one wrong); question 1 one copy (right)
    data = frame(score=[1.0, 0.0, 1.0], meta_circular_group=[0, 0, 1])
    scores = point("mmbench", data)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["circular_accuracy"] == pytest.approx(0.0)  # only questions with copies count: 0 of 1


def test_cvbench_combines_sources_as_published() -> None:
    data = frame(
        score=[1.0, 1.0, 0.0, 0.0, 1.0],
        meta_type=["2D", "2D", "2D", "3D", "3D"],
        meta_source=["ADE20K", "ADE20K", "COCO", "Omni3D", "Omni3D"],
    )
    scores = point("cvbench", data)
    assert scores["accuracy_2d"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["accuracy_3d"] == pytest.approx(0.5)
    assert scores["accuracy"] == pytest.approx(0.5)


def test_textvqa_official_is_the_soft_accuracy_of_the_raw_response() -> None:
    data = frame(score_official=[1.0, 0.3, None])
    assert point("textvqa", data)["accuracy"] == pytest.approx(1.3 / 3)


def test_bootstrap_weights_equal_explicitly_resampled_rows() -> None:
    """A weight row that draws items (0, 0, 2, 3, 3, 3) scores exactly as the six rows themselves would."""
    predicted = np.array(["yes", "no", "yes", "yes", None], dtype=object)
    gold = np.array(["yes", "yes", "no", "yes", "no"], dtype=object)
    counts = np.array([[2, 0, 1, 3, 0]], dtype=float)
    weighted = binary_scores(counts, predicted, gold)
    drawn = np.repeat(np.arange(5), counts[0].astype(int))
    explicit = binary_scores(np.ones((1, drawn.size)), predicted[drawn], gold[drawn])
    for metric in weighted:
        assert weighted[metric][0] == pytest.approx(explicit[metric][0]), metric


def test_official_rows_have_intervals_per_condition() -> None:
    items = pl.DataFrame(
        {
            "item_id": [str(i) for i in range(40)],
            "image_keys": [[f"img{i // 2}"] for i in range(40)],
            "answer": ["yes", "no"] * 20,
            "answers": [None] * 40,
            "options": [None] * 40,
            "metadata": [json.dumps({"category": "random"})] * 40,
        },
        schema_overrides={"answers": pl.List(pl.String), "options": pl.List(pl.String)},
    )
    rng = np.random.default_rng(0)
    predictions = pl.DataFrame(
        {
            "item_id": [str(i) for i in range(40)] * 2,
            "family": ["blur"] * 80,
            "level": [0] * 40 + [1] * 40,
            "param": [1.0] * 40 + [25.0] * 40,
            "parsed": [p for p in rng.choice(["yes", "no"], 80)],
        }
    )
    pope = get_benchmark("pope")
    rows = official_rows(predictions, items, pope.official, pope.cluster, 200, 0.95, 0)
    f1 = [r for r in rows if r["metric"] == "official_f1"]
    assert [r["level"] for r in f1] == [0, 1]
    for row in f1:
        assert row["ci_low"] < row["value"] < row["ci_high"]
        assert row["n"] == 40


def test_the_report_shows_official_scores_along_the_blur_levels() -> None:
    from blindspot.stages.aggregate.tables import official_wide

    def scores(f1: float) -> list[dict]:
        return [{"metric": "f1", "value": f1, "ci_low": f1 - 0.1, "ci_high": f1 + 0.1},
                {"metric": "yes_ratio", "value": 0.5, "ci_low": None, "ci_high": None}]  # fmt: skip

    decay = pl.DataFrame(
        {
            "model": ["m"] * 3,
            "benchmark": ["pope"] * 3,
            "family": ["blur", "blur", "blank"],
            "level": [1, 0, 1],
            "param": [25.0, 1.0, 0.0],
            "official": [scores(0.6), scores(0.9), scores(0.2)],
        }
    )
    wide = official_wide(decay, "blur")
    assert wide.columns == ["model", "benchmark", "metric", "clean", "blur k=25"]
    assert wide.row(0) == ("m", "pope", "f1", "0.900 [0.800, 1.000]", "0.600 [0.500, 0.700]")
    assert wide.row(1) == ("m", "pope", "yes_ratio", "0.500", "0.500")


def lmms_eval_mme_score(rows: list[tuple[str, str, float]]) -> float:
    """lmms-eval's mme_aggregate_results, transcribed: per category, per image (question_id), acc = mean x 100,
    acc_plus = both right x 100; the category's score is the mean over images of acc + acc_plus; summed."""
    per_category: dict[str, dict[str, list[float]]] = {}
    for category, image, score in rows:
        per_category.setdefault(category, {}).setdefault(image, []).append(score)
    total = 0.0
    for images in per_category.values():
        scores = [sum(s) / len(s) * 100 + (sum(s) == len(s)) * 100 for s in images.values()]
        total += sum(scores) / len(scores)
    return total


def test_mme_pairs_declared_in_config_score_as_lmms_eval_does() -> None:
    """A benchmark described in config declares MME's aggregates over the two questions of an image: accuracy,
    acc+ (both right) per category and MME's score, against a transcription of lmms-eval's aggregate."""
    from blindspot.benchmarks.generic import PairedOfficial, paired_official

    rng = np.random.default_rng(0)
    rows = [(category, f"{category}/{image}.png", float(rng.random() < 0.7))
            for category in ("color", "count", "OCR") for image in range(6) for _ in range(2)]  # fmt: skip
    data = frame(
        score=[r[2] for r in rows],
        image_keys=[[f"sha-{r[1]}"] for r in rows],
        meta_category=[r[0] for r in rows],
    )
    scores, cluster = paired_official(PairedOfficial(group_by="image", by="category", score="mme"))
    got = {k: float(v[0]) for k, v in scores(data).items()}
    assert got["score"] == pytest.approx(lmms_eval_mme_score(rows))
    assert got["accuracy"] == pytest.approx(np.mean([r[2] for r in rows]))
    pairs = [rows[i][2] + rows[i + 1][2] for i in range(0, len(rows), 2)]
    assert got["accuracy_plus"] == pytest.approx(np.mean([p == 2 for p in pairs]))
    assert got["accuracy_plus_OCR"] == pytest.approx(np.mean([p == 2 for p in pairs[12:]]))
    assert cluster({"image_keys": ["a", "b"]}) == "a+b"  # the bootstrap draws an image's questions together


def test_paired_official_is_refused_without_its_category() -> None:
    from pydantic import ValidationError

    from blindspot.benchmarks.generic import PairedOfficial

    with pytest.raises(ValidationError, match="score: mme sums per category"):
        PairedOfficial(score="mme")
