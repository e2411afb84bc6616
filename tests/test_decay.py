"""Decay metrics against hand-computed values on a small fixed predictions table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import DecayConfig
from blindspot.contracts.tables import PREDICTIONS_SCHEMA
from blindspot.stages.decay import DecayError, build_grid, decay_benchmark, decay_metrics
from blindspot.store.provenance import provenance
from blindspot.store.tables import write_table

LABELS = ["A", "B", "C", "D"]
CONFIG = DecayConfig(min_parsed=1, bootstrap=200, coarse_families=["blank", "none"])
CONDITIONS = [("blur", 0, 1.0), ("blur", 1, 25.0), ("blur", 2, 61.0), ("blank", 1, 0.0), ("none", 1, 0.0)]


def logprobs(answer: str | None, margin: float) -> list[float]:
    """Option log-probs where ``answer`` leads the runner-up by ``margin`` nats (uniform if None)."""
    values = [-3.0] * 4
    if answer is not None:
        values[LABELS.index(answer)] = -3.0 + margin
    return values


def row(
    item: str,
    family: str,
    level: int,
    param: float,
    parsed: str | None,
    margin: float,
    outcome: str | None = None,
    gold: str = "A",
) -> dict:
    if outcome is None:
        outcome = "unparsed" if parsed is None else ("correct" if parsed == gold else "wrong")
    return {
        "model": "m",
        "benchmark": "bench",
        "item_id": item,
        "family": family,
        "level": level,
        "param": param,
        "answer_type": "multiple_choice",
        "gold": gold,
        "n_options": 4,
        "raw_text": parsed or "???",
        "parsed": parsed,
        "outcome": outcome,
        "score": float(outcome == "correct"),
        "option_labels": LABELS,
        "option_logprobs": logprobs(parsed, margin),
        "scored": parsed,
        "first_token_is_label": True,
    }


# Answers per condition (blur/0, blur/1, blur/2, blank/1, none/1) and the margin of each answer.
TABLE = {
    "prior": (["A", "A", "A", "A", "A"], 3.0),  # survives everything
    "fine": (["A", "A", "B", "B", "B"], 3.0),  # changes along the blur ladder
    "coarse": (["A", "A", "A", "B", "A"], 3.0),  # survives blur, not the blank image
    "coinflip": (["A", "A", "A", "A", "A"], 0.2),  # identical answers, but no evidence at blurred levels
    "broken": ([None, "A", "A", "A", "A"], 3.0),  # no clean answer
}


def predictions() -> pl.DataFrame:
    rows = []
    for item, (answers, margin) in TABLE.items():
        for (family, level, param), answer in zip(CONDITIONS, answers, strict=True):
            clean_margin = 3.0 if (family, level) == ("blur", 0) else margin
            rows.append(row(item, family, level, param, answer, clean_margin))
    return pl.from_dicts(rows, schema=pl.Schema(PREDICTIONS_SCHEMA))


def metric(rows: list[dict], name: str, family: str = "all", level: int = -1) -> dict:
    (found,) = [r for r in rows if r["metric"] == name and r["family"] == family and r["level"] == level]
    return found


@pytest.fixture(scope="module")
def computed() -> tuple[list[dict], dict[str, dict]]:
    rows, items = decay_metrics(build_grid(predictions(), ("blur", 0)), CONFIG, seed=0)
    return rows, {r["item_id"]: r for r in items}


def test_identical_rate_and_c_rate(computed) -> None:
    rows, _ = computed
    # Items with a clean answer: prior, fine, coarse, coinflip (4). blur/2 keeps A for prior, coarse, coinflip.
    assert metric(rows, "identical_rate", "blur", 2)["value"] == pytest.approx(3 / 4)
    assert metric(rows, "identical_rate", "blur", 2)["n"] == 4
    assert metric(rows, "identical_rate", "blank", 1)["value"] == pytest.approx(2 / 4)  # prior, coinflip
    assert metric(rows, "c_rate")["value"] == pytest.approx(3 / 4)  # prior, coarse, coinflip
    # Evidence: coinflip's margin at blurred levels is 0.2 < 1.0 nat, so it does not survive.
    assert metric(rows, "c_rate_margin")["value"] == pytest.approx(2 / 4)
    assert metric(rows, "margin_survival_rate", "blur", 2)["value"] == pytest.approx(2 / 4)
    assert metric(rows, "c_chance")["value"] == pytest.approx((1 / 4) ** 2)


def test_accuracy_curves(computed) -> None:
    rows, _ = computed
    assert metric(rows, "accuracy", "blur", 0)["value"] == pytest.approx(4 / 5)  # broken is unparsed
    assert metric(rows, "accuracy", "blur", 2)["value"] == pytest.approx(4 / 5)  # fine wrong, broken right
    assert metric(rows, "accuracy_c1", "blur", 2)["value"] == pytest.approx(1.0)
    assert metric(rows, "accuracy_c1", "blur", 2)["n"] == 3
    assert metric(rows, "n_unparsed", "blur", 0)["value"] == 1
    assert metric(rows, "n_wrong", "blur", 2)["value"] == 1
    # Outcome shares over all five items, with intervals: at blur/0 one of five is unparsed, none abstains.
    unparsed = metric(rows, "share_unparsed", "blur", 0)
    assert unparsed["value"] == pytest.approx(1 / 5) and unparsed["n"] == 5
    assert unparsed["ci_low"] < 1 / 5 < unparsed["ci_high"]
    assert metric(rows, "share_abstain", "blur", 0)["value"] == 0.0
    assert metric(rows, "share_correct", "blur", 2)["value"] == pytest.approx(4 / 5)
    assert metric(rows, "share_wrong", "blur", 2)["value"] == pytest.approx(1 / 5)
    # MG = S_v - S_wv = accuracy clean (4/5) - accuracy without image (prior, coarse, coinflip, broken: 4/5)
    assert metric(rows, "mg")["value"] == pytest.approx(0.0)
    assert metric(rows, "ml")["value"] is None and "base language model" in metric(rows, "ml")["note"]


def test_item_classes(computed) -> None:
    _, items = computed
    assert items["prior"]["class"] == "language_prior"
    assert items["fine"]["class"] == "fine_visual"
    assert items["coarse"]["class"] == "coarse_visual"
    assert items["broken"]["class"] == "unparsed"
    # Identity calls the coin flip language-prior; the margin says the blur erased its evidence.
    assert items["coinflip"]["class_identity"] == "language_prior"
    assert items["coinflip"]["class_margin"] == "fine_visual"
    assert items["coinflip"]["class"] == "fine_visual"
    assert [k for k, v in items.items() if v["vision_indispensable"]] == ["fine", "coarse", "coinflip"]


def test_shares_and_intervals(computed) -> None:
    rows, _ = computed
    shares = {c: metric(rows, f"share_{c}")["value"] for c in ("fine_visual", "coarse_visual", "language_prior")}
    assert shares == {"fine_visual": 2 / 5, "coarse_visual": 1 / 5, "language_prior": 1 / 5}
    # vision-indispensable: fine (two) and coarse (one) visual, with its interval
    needs = metric(rows, "share_vision_indispensable")
    assert needs["value"] == pytest.approx(3 / 5) and needs["ci_low"] <= 3 / 5 <= needs["ci_high"]
    for r in rows:
        if r["ci_low"] is not None:
            assert r["ci_low"] - 1e-12 <= r["value"] <= r["ci_high"] + 1e-12, r


def test_bootstrap_is_seeded(computed) -> None:
    again, _ = decay_metrics(build_grid(predictions(), ("blur", 0)), CONFIG, seed=0)
    assert again == computed[0]
    other, _ = decay_metrics(build_grid(predictions(), ("blur", 0)), CONFIG, seed=1)
    assert other != computed[0]


def test_chance_agreement_inflates_identity_but_not_margin() -> None:
    """A binary item whose blurred answers are coin flips keeps its clean answer half the time by identity."""
    rng = np.random.default_rng(0)
    answers = {
        f"i{i}": {"blur/0": ("yes", 4.0), "blur/1": ("yes" if rng.random() < 0.5 else "no", 0.05)} for i in range(400)
    }
    config = DecayConfig(min_parsed=1, bootstrap=100, coarse_families=[])
    out, _ = decay_metrics(build_grid(yes_no_table(answers), ("blur", 0)), config, seed=0)
    assert metric(out, "c_rate")["value"] == pytest.approx(0.5, abs=0.06)
    assert metric(out, "c_chance")["value"] == pytest.approx(0.5)
    assert metric(out, "c_rate_margin")["value"] == 0.0


def test_missing_predictions_are_an_error() -> None:
    table = predictions().filter(~((pl.col("item_id") == "fine") & (pl.col("family") == "blank")))
    with pytest.raises(DecayError, match=r"item 'fine' has no prediction for blank/1"):
        build_grid(table, ("blur", 0))
    with pytest.raises(DecayError, match="no clean condition"):
        build_grid(predictions().filter(pl.col("level") != 0), ("blur", 0))


def test_decay_outputs(tmp_path: Path) -> None:
    path = tmp_path / "pred.parquet"
    write_table(predictions().to_arrow(), PREDICTIONS_SCHEMA, provenance("predict", {}, model_name="m"), path)
    outputs = {name: tmp_path / "decay" / f"bench.{name}" for name in ("metrics", "classes", "manifest")}
    items_path = tmp_path / "items.parquet"
    # prior and fine share a source image; the rest have their own
    keys = {"prior": ["img1"], "fine": ["img1"], "coarse": ["img2"], "coinflip": ["img3"], "broken": ["img4"]}
    pl.DataFrame({"item_id": list(keys), "image_keys": list(keys.values())}).write_parquet(items_path)
    config = DecayConfig(min_parsed=1, bootstrap=50, coarse_families=["blank", "none"])
    assert decay_benchmark(path, items_path, config, 0, outputs, "m", "bench", scoring=GENERIC_SCORING).n_items == 5
    manifest = json.loads(outputs["manifest"].read_text())
    assert manifest["item_ids"] == ["fine", "coarse", "coinflip"] and manifest["model"] == "m"
    items = pl.read_parquet(outputs["classes"])
    assert items["class"].to_list() == ["language_prior", "fine_visual", "coarse_visual", "fine_visual", "unparsed"]
    metrics = pl.read_parquet(outputs["metrics"])
    assert set(metrics["model"]) == {"m"} and set(metrics["benchmark"]) == {"bench"}
    assert {"identical_rate", "accuracy", "c_rate", "mg"} <= set(metrics["metric"])


def yes_no_table(answers: dict[str, dict[str, str | tuple[str, float]]], margin: float = 3.0) -> pl.DataFrame:
    """Yes/no predictions: item -> {condition key: answer, or (answer, its margin)}; by default each answer leads
    by ``margin`` nats."""
    rows = []
    for item, by_condition in answers.items():
        for key, given in by_condition.items():
            answer, lead = given if isinstance(given, tuple) else (given, margin)
            family, level = key.split("/")
            lp = [-1.0 + lead, -1.0] if answer == "yes" else [-1.0, -1.0 + lead]
            rows.append(
                {
                    "model": "m",
                    "benchmark": "b",
                    "item_id": item,
                    "family": family,
                    "level": int(level),
                    "param": 0.0,
                    "answer_type": "yes_no",
                    "gold": "yes",
                    "n_options": None,
                    "raw_text": answer,
                    "parsed": answer,
                    "outcome": "correct" if answer == "yes" else "wrong",
                    "score": float(answer == "yes"),
                    "option_labels": ["yes", "no"],
                    "option_logprobs": lp,
                    "scored": answer,
                    "first_token_is_label": True,
                }
            )
    return pl.from_dicts(rows, schema=pl.Schema(PREDICTIONS_SCHEMA))


def test_empirical_chance_from_the_models_own_defaults() -> None:
    """Without evidence (blank, none) the model says "no" 3 times in 4: q(no) = 3/4, q(yes) = 1/4. With 2 blurred
    levels an item whose clean answer is "no" survives by default with (3/4)^2, a "yes" item with (1/4)^2."""
    answers = {
        "i1": {"blur/0": "no", "blur/1": "no", "blur/2": "no", "blank/1": "no", "none/1": "no"},
        "i2": {"blur/0": "yes", "blur/1": "no", "blur/2": "no", "blank/1": "no", "none/1": "yes"},
    }
    config = DecayConfig(min_parsed=1, bootstrap=50, coarse_families=["blank", "none"])
    rows, _ = decay_metrics(build_grid(yes_no_table(answers), ("blur", 0)), config, seed=0)
    assert metric(rows, "c_chance")["value"] == pytest.approx(0.25)  # (1/2)^2, whatever the model does
    assert metric(rows, "c_chance_empirical")["value"] == pytest.approx(((3 / 4) ** 2 + (1 / 4) ** 2) / 2)


def test_uncertain_clean_answers_are_their_own_class() -> None:
    """A clean answer ahead by only 0.5 nats is not confident: the item is uncertain, never fine-visual, and stays
    out of the vision-indispensable manifest."""
    answers = {"u": {"blur/0": "yes", "blur/1": "no", "blur/2": "no", "blank/1": "no", "none/1": "no"}}
    table = yes_no_table(answers, margin=0.5)
    config = DecayConfig(min_parsed=1, bootstrap=50, coarse_families=["blank", "none"])
    rows, items = decay_metrics(build_grid(table, ("blur", 0)), config, seed=0)
    assert items[0]["class"] == "uncertain" and not items[0]["vision_indispensable"]
    assert items[0]["class_identity"] == "fine_visual"  # identity alone would have called it fine-visual
    assert metric(rows, "share_uncertain")["value"] == 1.0


def test_answers_that_start_with_text_are_judged_by_identity() -> None:
    """Where the first generated token is not an option label ("The answer is no"), the option log-probs do not
    describe the answer given: the item falls back to identity, and the share judged by margin says so."""
    answers = {
        "a": {"blur/0": "yes", "blur/1": "yes", "blur/2": "yes", "blank/1": "yes", "none/1": "yes"},
        "b": {"blur/0": "yes", "blur/1": "yes", "blur/2": "yes", "blank/1": "no", "none/1": "yes"},
    }
    table = yes_no_table(answers).with_columns(
        first_token_is_label=~((pl.col("item_id") == "b") & (pl.col("family") == "blur") & (pl.col("level") == 2))
    )
    config = DecayConfig(min_parsed=1, bootstrap=50, coarse_families=["blank", "none"])
    rows, items = decay_metrics(build_grid(table, ("blur", 0)), config, seed=0)
    assert [i["judged_by"] for i in items] == ["margin", "identity"]
    assert metric(rows, "share_judged_by_margin")["value"] == 0.5


def test_open_answers_are_compared_as_the_scorer_normalises_them() -> None:
    rows = []
    for level, text in enumerate(["Red", "red.", "the red"]):
        rows.append(
            {
                "model": "m",
                "benchmark": "b",
                "item_id": "o",
                "family": "blur",
                "level": level,
                "param": 0.0,
                "answer_type": "open",
                "gold": "red",
                "n_options": None,
                "raw_text": text,
                "parsed": text,
                "outcome": "correct",
                "score": 1.0,
                "option_labels": None,
                "option_logprobs": None,
                "scored": None,
                "first_token_is_label": None,
            }
        )
    table = pl.from_dicts(rows, schema=pl.Schema(PREDICTIONS_SCHEMA))
    out, items = decay_metrics(
        build_grid(table, ("blur", 0)), DecayConfig(min_parsed=1, bootstrap=20, coarse_families=[]), seed=0
    )
    assert metric(out, "c_rate")["value"] == 1.0 and items[0]["judged_by"] == "identity"


def test_a_missing_family_is_an_error_not_another_taxonomy() -> None:
    """The default coarse families include noise; predictions without it must not quietly drop the family."""
    with pytest.raises(DecayError, match=r"^decay.coarse_families: noise not in the predictions \(have: blank, blur"):
        decay_metrics(build_grid(predictions(), ("blur", 0)), DecayConfig(min_parsed=1, bootstrap=20), seed=0)


def test_mg_is_unavailable_with_its_reason_without_the_no_image_condition() -> None:
    table = predictions().filter(pl.col("family") != "none")
    rows, _ = decay_metrics(
        build_grid(table, ("blur", 0)), DecayConfig(min_parsed=1, bootstrap=20, coarse_families=["blank"]), 0
    )
    assert metric(rows, "mg")["value"] is None and "'none' did not run" in metric(rows, "mg")["note"]


def test_intervals_do_not_collapse_at_zero() -> None:
    """0 of 100 clusters: the percentile bootstrap alone gives [0, 0]; Wilson gives [0, 3.84/103.84]."""
    from blindspot.statistics import ClusterBootstrap, wilson

    assert wilson(0, 100, 0.95)[1] == pytest.approx(1.959964**2 / (100 + 1.959964**2), rel=1e-4)
    boot = ClusterBootstrap(np.arange(100), 500, 0.95, seed=0)
    estimate = boot.mean(np.zeros(100), np.ones(100, bool))
    assert estimate.value == 0 and estimate.low == 0 and estimate.high == pytest.approx(0.037, abs=5e-4)


def test_items_sharing_an_image_move_together() -> None:
    """10 images with 10 questions each, answered alike within an image: the evidence is 10 images, not 100
    items, and the interval says so."""
    from blindspot.statistics import ClusterBootstrap

    values = np.repeat([1.0, 0.0] * 5, 10)
    everything = np.ones(100, bool)
    # proportion=False: the bootstrap alone (the Wilson widening counts clusters too, and would hide a bootstrap
    # that ignored them)
    clustered = ClusterBootstrap(np.repeat(np.arange(10), 10), 2000, 0.95, seed=0).mean(
        values, everything, proportion=False
    )
    naive = ClusterBootstrap(np.arange(100), 2000, 0.95, seed=0).mean(values, everything, proportion=False)
    assert clustered.high - clustered.low > 0.45  # about what 10 independent coin flips allow
    assert naive.high - naive.low < 0.25


def test_mg_is_with_image_minus_without() -> None:
    """Two items, gold "yes": both right with the image; without it one is wrong. MG = 1 - 1/2 = +0.5."""
    answers = {
        "a": {"blur/0": "yes", "blur/1": "yes", "none/1": "no"},
        "b": {"blur/0": "yes", "blur/1": "yes", "none/1": "yes"},
    }
    config = DecayConfig(min_parsed=1, bootstrap=50, coarse_families=["none"])
    rows, _ = decay_metrics(build_grid(yes_no_table(answers), ("blur", 0)), config, seed=0)
    assert metric(rows, "mg")["value"] == pytest.approx(0.5)


def test_identity_survival_compares_each_condition_with_the_clean_answer() -> None:
    """Judged by identity (the first token is not an option label): the answer survives the ladder and changes on
    the blank image, where it agrees with the no-image answer. Compared with the clean answer (not with another
    condition), the item is coarse-visual."""
    answers = {"e": {"blur/0": "yes", "blur/1": "yes", "blur/2": "yes", "blank/1": "no", "none/1": "no"}}
    table = yes_no_table(answers).with_columns(first_token_is_label=pl.lit(False))
    config = DecayConfig(min_parsed=1, bootstrap=20, coarse_families=["blank"])
    _, items = decay_metrics(build_grid(table, ("blur", 0)), config, seed=0)
    assert items[0]["judged_by"] == "identity" and items[0]["class"] == "coarse_visual"


def test_first_lost_level_is_where_the_clean_answer_first_goes() -> None:
    """Per item, the first blur level that loses the clean answer, by the item's own reading: "late" keeps it
    until blur/3 by margin; "weak" keeps the same answer at blur/1 and blur/2 but with too little margin from
    blur/2 on, so margin says blur/2; "flip" changes answer at blur/1 and comes back (its loss still counts at
    blur/1); "kept" never loses it (null)."""
    ladder = ["blur/0", "blur/1", "blur/2", "blur/3"]
    rest = {"blank/1": "no", "none/1": "no"}
    answers = {
        "late": {**dict(zip(ladder, ["yes", "yes", "yes", "no"], strict=True)), **rest},
        "weak": {**dict(zip(ladder, ["yes", "yes", ("yes", 0.3), ("yes", 0.3)], strict=True)), **rest},
        "flip": {**dict(zip(ladder, ["yes", "no", "yes", "yes"], strict=True)), **rest},
        "kept": {**dict(zip(ladder, ["yes", "yes", "yes", "yes"], strict=True)), **rest},
    }
    config = DecayConfig(min_parsed=1, bootstrap=20, coarse_families=["blank", "none"])
    _, items = decay_metrics(build_grid(yes_no_table(answers), ("blur", 0)), config, seed=0)
    lost = {i["item_id"]: i["first_lost_level"] for i in items}
    assert lost == {"late": 3, "weak": 2, "flip": 1, "kept": None}


def test_an_unsure_clean_answer_has_no_first_lost_level() -> None:
    answers = {"u": {"blur/0": "yes", "blur/1": "no", "blur/2": "no", "blank/1": "no", "none/1": "no"}}
    config = DecayConfig(min_parsed=1, bootstrap=20, coarse_families=["blank", "none"])
    _, items = decay_metrics(build_grid(yes_no_table(answers, margin=0.5), ("blur", 0)), config, seed=0)
    assert items[0]["class"] == "uncertain" and items[0]["first_lost_level"] is None


def test_hedged_share_and_official_accuracy_per_level() -> None:
    """share_hedged counts answers given beside a refusal or hedge; accuracy_official is the official scorer on the
    raw response (open answers), reported beside accuracy (the parsed reading)."""
    rows = []
    for i, (hedged, official) in enumerate([(True, 0.0), (False, 1.0), (True, 1.0), (False, 0.0)]):
        for family, level, param in CONDITIONS:
            r = row(f"i{i}", family, level, param, "A", 2.0)
            r |= {"answer_type": "open", "n_options": None, "option_labels": None, "option_logprobs": None,
                  "scored": None, "first_token_is_label": None, "hedged": hedged and level == 1,
                  "score_official": official}  # fmt: skip
            rows.append(r)
    grid = build_grid(pl.from_dicts(rows, schema=pl.Schema(PREDICTIONS_SCHEMA)), ("blur", 0))
    out, _ = decay_metrics(grid, CONFIG, seed=0)
    assert metric(out, "share_hedged", "blur", 1)["value"] == pytest.approx(2 / 4)
    assert metric(out, "n_hedged", "blur", 1)["value"] == 2
    assert metric(out, "share_hedged", "blur", 0)["value"] == 0.0
    assert metric(out, "accuracy", "blur", 1)["value"] == 1.0  # the parsed reading: every answer is "A" = gold
    assert metric(out, "accuracy_official", "blur", 1)["value"] == pytest.approx(2 / 4)


def mostly_unparsed(n_items: int, n_read: int) -> pl.DataFrame:
    """``n_items`` items of which only the first ``n_read`` give a readable answer under any condition."""
    rows = []
    for i in range(n_items):
        for family, level, param in CONDITIONS:
            rows.append(row(f"i{i}", family, level, param, "A" if i < n_read else None, 3.0))
    return pl.from_dicts(rows, schema=pl.Schema(PREDICTIONS_SCHEMA))


def test_a_rate_from_too_few_parsed_answers_is_withheld_with_its_reason() -> None:
    """Two readable answers out of twenty: accuracy, E and C are null with the reason, never 0.0 [0.0, 0.0] or a
    rate computed from two items; counts and the reading shares are still reported."""
    grid = build_grid(mostly_unparsed(20, 2), ("blur", 0))
    rows, _ = decay_metrics(grid, DecayConfig(min_parsed=5, bootstrap=20, coarse_families=["blank", "none"]), 0)
    withheld = [("accuracy", "blur", 2), ("identical_rate", "blur", 2), ("c_rate", "all", -1),
                ("c_rate_margin", "all", -1), ("accuracy_clean", "all", -1), ("mg", "all", -1)]  # fmt: skip
    for name, family, level in withheld:
        found = metric(rows, name, family, level)
        assert found["value"] is None and found["ci_low"] is None, name
        assert "only 2" in found["note"] and "decay.min_parsed is 5" in found["note"], (name, found["note"])
    assert metric(rows, "share_unparsed_answers")["value"] == pytest.approx(18 / 20)
    assert metric(rows, "n_unparsed", "blur", 2)["value"] == 18
    # the same answers with the minimum met: the rates are computed
    rows, _ = decay_metrics(grid, DecayConfig(min_parsed=2, bootstrap=20, coarse_families=["blank", "none"]), 0)
    assert metric(rows, "c_rate")["value"] == 1.0 and metric(rows, "accuracy", "blur", 2)["value"] == pytest.approx(0.1)


def test_every_null_metric_says_why() -> None:
    """No answer read at all: every null value carries a note."""
    config = DecayConfig(bootstrap=20, coarse_families=["blank", "none"])
    rows, _ = decay_metrics(build_grid(mostly_unparsed(6, 0), ("blur", 0)), config, 0)
    unexplained = [(r["metric"], r["family"]) for r in rows if r["value"] is None and not r["note"]]
    assert unexplained == []
    assert "only 0 of 6 clean answers parsed" in metric(rows, "c_rate")["note"]


def test_a_mostly_unparsed_benchmark_is_flagged_in_one_line(tmp_path: Path) -> None:
    from blindspot.stages.decay import DecayOutcome

    rows, _ = decay_metrics(build_grid(mostly_unparsed(10, 3), ("blur", 0)), DecayConfig(bootstrap=20,
                            coarse_families=["blank", "none"]), 0)  # fmt: skip
    line = DecayOutcome.of(10, rows).line("m", "bench", 0.5)
    assert line.startswith("WARNING: 70% of m's answers on bench could not be read (unparsed)")
    assert "\n" not in line and "decay.mostly_unparsed is 0.5" in line
    rows, _ = decay_metrics(build_grid(mostly_unparsed(10, 8), ("blur", 0)), DecayConfig(bootstrap=20,
                            coarse_families=["blank", "none"]), 0)  # fmt: skip
    line = DecayOutcome.of(10, rows).line("m", "bench", 0.5)
    assert line.startswith("decay metrics for m on bench: 10 items (unparsed 20.0%, abstain 0.0%, hedged 0.0%")


def test_items_that_share_an_image_move_together_in_the_intervals() -> None:
    """Forty images, five questions each, answered alike per image: the C rate's interval rests on 40 images, not
    200 items, so it is wider than for the same answers on 200 images; the point estimate is the same."""
    rng = np.random.default_rng(0)
    survives = np.repeat(rng.random(40) < 0.4, 5)
    answers = {f"i{i}": {"blur/0": "yes", "blur/1": "yes" if s else "no", "blur/2": "yes" if s else "no",
                         "blank/1": "no", "none/1": "no"} for i, s in enumerate(survives)}  # fmt: skip
    table = yes_no_table(answers)
    config = DecayConfig(bootstrap=400, coarse_families=["blank", "none"])
    shared = {f"i{i}": f"img{i // 5}" for i in range(200)}
    together, _ = decay_metrics(build_grid(table, ("blur", 0), shared), config, seed=0)
    apart, _ = decay_metrics(build_grid(table, ("blur", 0)), config, seed=0)
    a, b = metric(together, "c_rate"), metric(apart, "c_rate")
    assert a["value"] == b["value"] == pytest.approx(survives.mean())
    assert (a["ci_high"] - a["ci_low"]) > 1.8 * (b["ci_high"] - b["ci_low"])


def test_a_mostly_unparsed_answer_type_warns_even_when_the_whole_is_not() -> None:
    """A benchmark of two answer types whose yes/no half is entirely unread: a third of all answers are unparsed,
    under the 0.5 threshold, but the warning names the yes/no answers (and does not when they are read)."""
    from blindspot.stages.decay import DecayOutcome

    mc = mostly_unparsed(20, 20)
    yes_no = mostly_unparsed(10, 0).with_columns(
        pl.col("item_id") + "_yn", pl.lit("yes_no").alias("answer_type"), pl.lit(2).alias("n_options")
    )
    grid = build_grid(pl.concat([mc, yes_no]), ("blur", 0))
    rows, _ = decay_metrics(grid, DecayConfig(bootstrap=20, coarse_families=["blank", "none"]), 0)
    assert metric(rows, "share_unparsed_answers")["value"] == pytest.approx(10 / 30)
    assert metric(rows, "share_unparsed_answers_yes_no")["value"] == 1.0
    assert metric(rows, "share_unparsed_answers_multiple_choice")["value"] == 0.0
    line = DecayOutcome.of(30, rows).line("m", "bench", 0.5)
    assert line.startswith("WARNING: 100% of its yes_no answers on bench could not be read (unparsed; 33% of all")
    assert "\n" not in line
    read = build_grid(pl.concat([mc, mostly_unparsed(10, 10).with_columns(pl.col("item_id") + "_yn",
                                 pl.lit("yes_no").alias("answer_type"))]), ("blur", 0))  # fmt: skip
    rows, _ = decay_metrics(read, DecayConfig(bootstrap=20, coarse_families=["blank", "none"]), 0)
    assert not DecayOutcome.of(30, rows).line("m", "bench", 0.5).startswith("WARNING")


def test_class_shares_that_rest_on_unread_answers_are_withheld_with_the_reason() -> None:
    """Two clean answers read out of twenty: every class share but the unparsed one is null with the reason,
    never 0.0% fine visual; the unparsed share is still reported."""
    grid = build_grid(mostly_unparsed(20, 2), ("blur", 0))
    rows, _ = decay_metrics(grid, DecayConfig(min_parsed=5, bootstrap=20, coarse_families=["blank", "none"]), 0)
    for name in ("fine_visual", "coarse_visual", "language_prior", "uncertain"):
        for suffix in ("", "_identity"):
            found = metric(rows, f"share_{name}{suffix}")
            assert found["value"] is None and "only 2 of 20 clean answers parsed" in found["note"], name
    assert metric(rows, "share_unparsed")["value"] == pytest.approx(18 / 20)
    rows, _ = decay_metrics(grid, DecayConfig(min_parsed=2, bootstrap=20, coarse_families=["blank", "none"]), 0)
    assert metric(rows, "share_language_prior")["value"] == pytest.approx(2 / 20)


def test_the_decay_stage_clusters_its_intervals_by_the_staged_source_images(tmp_path: Path) -> None:
    """Through the stage (not only build_grid): the items table's image_keys make the clusters. Forty images with
    five questions each answered alike give a C-rate interval as wide as forty observations allow."""
    rng = np.random.default_rng(0)
    survives = np.repeat(rng.random(40) < 0.4, 5)
    answers = {f"i{i}": {"blur/0": "yes", "blur/1": "yes" if s else "no", "blur/2": "yes" if s else "no",
                         "blank/1": "no", "none/1": "no"} for i, s in enumerate(survives)}  # fmt: skip
    path = tmp_path / "pred.parquet"
    write_table(yes_no_table(answers).to_arrow(), PREDICTIONS_SCHEMA, provenance("predict", {}), path)
    config = DecayConfig(bootstrap=400, coarse_families=["blank", "none"])

    def c_rate_width(image_of: Callable[[int], str], name: str) -> float:
        items_path = tmp_path / f"{name}.items.parquet"
        pl.DataFrame({"item_id": list(answers), "image_keys": [[image_of(i)] for i in range(200)]}).write_parquet(
            items_path
        )
        outputs = {part: tmp_path / name / f"b.{part}" for part in ("metrics", "classes", "manifest")}
        decay_benchmark(path, items_path, config, 0, outputs, "m", "b", scoring=GENERIC_SCORING)
        row = pl.read_parquet(outputs["metrics"]).filter(pl.col("metric") == "c_rate").row(0, named=True)
        return row["ci_high"] - row["ci_low"]

    assert c_rate_width(lambda i: f"img{i // 5}", "shared") > 1.6 * c_rate_width(lambda i: f"img{i}", "own")


# ------------------------------------------------------------------------------------------------ the prior


def _prior_world(seed: int, bias: float = 0.0, yes_no: bool = False) -> pl.DataFrame:
    """Items whose option logits are the gold option's evidence (strong when clean, none without an image) plus
    noise; ``bias`` adds a constant preference for the first option at every condition (a planted answer prior)."""
    rng = np.random.default_rng(seed)
    labels = ["yes", "no"] if yes_no else LABELS
    rows = []
    for k in range(60):
        gold = labels[k % len(labels)]
        noise = {c: rng.normal(0, 0.5, len(labels)) for c in CONDITIONS}
        for family, level, param in CONDITIONS:
            evidence = {("blur", 0): 3.0, ("blur", 1): 1.5, ("blur", 2): 0.5}.get((family, level), 0.0)
            logits = np.array([evidence * (lab == gold) for lab in labels]) + noise[(family, level, param)]
            logits[0] += bias
            lp = logits - np.log(np.exp(logits).sum())
            parsed = labels[int(lp.argmax())]
            outcome = "correct" if parsed == gold else "wrong"
            rows.append({"model": "m", "benchmark": "bench", "item_id": f"i{k}", "family": family, "level": level,
                         "param": param, "answer_type": "yes_no" if yes_no else "multiple_choice", "gold": gold,
                         "n_options": len(labels), "raw_text": parsed, "parsed": parsed, "outcome": outcome,
                         "score": float(outcome == "correct"), "option_labels": labels,
                         "option_logprobs": lp.tolist(), "scored": parsed, "first_token_is_label": True})  # fmt: skip
    return pl.from_dicts(rows, schema=pl.Schema(PREDICTIONS_SCHEMA))


def _values(frame: pl.DataFrame, name: str) -> dict[tuple[str, int], float | None]:
    rows, _ = decay_metrics(build_grid(frame, ("blur", 0)), CONFIG, seed=0)
    return {(r["family"], r["level"]): r["value"] for r in rows if r["metric"] == name}


def test_a_planted_answer_prior_is_removed_by_the_prior_corrected_accuracy() -> None:
    plain, biased = _prior_world(0), _prior_world(0, bias=2.5)
    raw_plain, raw_biased = _values(plain, "accuracy"), _values(biased, "accuracy")
    assert raw_biased[("blur", 2)] != raw_plain[("blur", 2)]  # the bias moves the raw accuracy
    corrected_plain = _values(plain, "accuracy_prior_corrected")
    assert _values(biased, "accuracy_prior_corrected") == corrected_plain  # and cancels exactly once corrected
    assert corrected_plain[("blur", 0)] > corrected_plain[("blur", 2)]  # the evidence still decays with blur
    clean = _values(plain, "accuracy_clean_prior_corrected")[("all", -1)]
    assert clean == corrected_plain[("blur", 0)]


def test_a_pure_yes_rate_shift_moves_the_yes_rate_not_the_corrected_contrast() -> None:
    plain, shifted = _prior_world(1, yes_no=True), _prior_world(1, bias=1.5, yes_no=True)
    yes_plain, yes_shifted = _values(plain, "yes_rate"), _values(shifted, "yes_rate")
    assert all(yes_shifted[c] > yes_plain[c] for c in yes_plain)  # the model says yes more often everywhere
    corrected_plain, corrected_shifted = (_values(f, "accuracy_prior_corrected") for f in (plain, shifted))

    def contrast(values: dict[tuple[str, int], float | None]) -> float:
        clean, blank = values[("blur", 0)], values[("blank", 1)]
        assert clean is not None and blank is not None
        return clean - blank

    assert contrast(corrected_shifted) == pytest.approx(contrast(corrected_plain))


def test_the_prior_corrected_accuracy_says_why_it_is_missing() -> None:
    frame = _prior_world(2).filter(~pl.col("family").is_in(["none", "blank"]))
    rows, _ = decay_metrics(build_grid(frame, ("blur", 0)), CONFIG.model_copy(update={"coarse_families": []}), 0)
    found = [r for r in rows if r["metric"] == "accuracy_prior_corrected"]
    assert found and all(r["value"] is None and "content-free condition" in r["note"] for r in found)
