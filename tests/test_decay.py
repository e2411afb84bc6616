"""Decay metrics against hand-computed values on a small fixed predictions table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from blindspot.config import DecayConfig
from blindspot.contracts.tables import PREDICTIONS_SCHEMA
from blindspot.decay import DecayError, build_grid, decay_benchmark, decay_metrics
from blindspot.provenance import provenance
from blindspot.tables import write_table

LABELS = ["A", "B", "C", "D"]
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
    rows, items = decay_metrics(build_grid(predictions(), ("blur", 0)), DecayConfig(bootstrap=200), seed=0)
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
    # MG = S_v - S_wv = accuracy clean (4/5) - accuracy without image (prior, coarse, coinflip, broken: 4/5)
    assert metric(rows, "mg")["value"] == pytest.approx(0.0)
    assert metric(rows, "ml")["value"] is None  # needs the base LLM alone


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
    for r in rows:
        if r["ci_low"] is not None:
            assert r["ci_low"] - 1e-12 <= r["value"] <= r["ci_high"] + 1e-12, r


def test_bootstrap_is_seeded(computed) -> None:
    again, _ = decay_metrics(build_grid(predictions(), ("blur", 0)), DecayConfig(bootstrap=200), seed=0)
    assert again == computed[0]
    other, _ = decay_metrics(build_grid(predictions(), ("blur", 0)), DecayConfig(bootstrap=200), seed=1)
    assert other != computed[0]


def test_chance_agreement_inflates_identity_but_not_margin() -> None:
    """A binary item whose blurred answers are coin flips keeps its clean answer half the time by identity."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(400):
        flip = "yes" if rng.random() < 0.5 else "no"
        for family, level, answer, margin in (("blur", 0, "yes", 4.0), ("blur", 1, flip, 0.05)):
            lp = [-1.0 + margin, -1.0] if answer == "yes" else [-1.0, -1.0 + margin]
            rows.append(
                {
                    "model": "m",
                    "benchmark": "bench",
                    "item_id": f"i{i}",
                    "family": family,
                    "level": level,
                    "param": 1.0,
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
                }
            )
    table = pl.from_dicts(rows, schema=pl.Schema(PREDICTIONS_SCHEMA))
    out, _ = decay_metrics(build_grid(table, ("blur", 0)), DecayConfig(bootstrap=100, coarse_families=[]), seed=0)
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
    assert decay_benchmark(path, DecayConfig(bootstrap=50), 0, outputs, "m", "bench") == 5
    manifest = json.loads(outputs["manifest"].read_text())
    assert manifest["item_ids"] == ["fine", "coarse", "coinflip"] and manifest["model"] == "m"
    items = pl.read_parquet(outputs["classes"])
    assert items["class"].to_list() == ["language_prior", "fine_visual", "coarse_visual", "fine_visual", "unparsed"]
    metrics = pl.read_parquet(outputs["metrics"])
    assert set(metrics["model"]) == {"m"} and set(metrics["benchmark"]) == {"bench"}
    assert {"identical_rate", "accuracy", "c_rate", "mg"} <= set(metrics["metric"])
