"""Paired comparisons (stages/aggregate/compare.py and the tests in blindspot.statistics): the adjustments and
McNemar's test by hand, a null world that rejects at its nominal rate before and after adjustment, and a planted
difference detected with the power its minimum detectable effect predicts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from scipy.stats import binom

from blindspot.config import BlindspotConfig, CompareConfig
from blindspot.stages.aggregate.compare import comparisons, hybrid_answers
from blindspot.statistics import adjust_p, mcnemar_exact, minimum_detectable

SEEDS = 300


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running maximum
    assert adjust_p(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/rank = 0.02, 0.02, 0.04, 0.04; running minimum from the top
    assert adjust_p(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p([0.9, 0.8], "holm") == pytest.approx([1.0, 1.0])
    assert adjust_p([], "holm") == []


def test_mcnemar_exact_is_the_two_sided_binomial_of_the_discordant_pairs() -> None:
    assert mcnemar_exact(10, 2) == pytest.approx(2 * binom.cdf(2, 12, 0.5))  # 158 / 4096
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == pytest.approx(1.0)


def test_minimum_detectable_effect_at_80_percent_power() -> None:
    assert minimum_detectable(0.1, 0.05, 0.8) == pytest.approx((1.959964 + 0.841621) * 0.1, rel=1e-5)
    assert minimum_detectable(None, 0.05, 0.8) is None


def _world(rng: np.random.Generator, n: int, shift: np.ndarray | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two models on ``n`` items and three conditions: each item has a difficulty both share, and each model draws
    its answers independently from it (a null world); ``shift`` (per item) is subtracted from b's chance."""
    ids = [f"i{k}" for k in range(n)]
    items = pl.DataFrame({"item_id": ids, "image_keys": [[f"img{k}"] for k in range(n)]})
    rows = []
    for level in range(3):
        chance = rng.uniform(0.2, 0.9, n)
        for model, p in (("a", chance), ("b", np.clip(chance - (shift if shift is not None else 0.0), 0, 1))):
            right = rng.random(n) < p
            rows += [{"model": model, "benchmark": "bench", "item_id": i, "family": "blur", "level": level,
                      "param": float(level), "outcome": "correct" if r else "wrong", "score": float(r)}
                     for i, r in zip(ids, right, strict=True)]  # fmt: skip
    return pl.DataFrame(rows), items


def _settings(**overrides: object) -> SimpleNamespace:
    return SimpleNamespace(**(CompareConfig(bootstrap=50).model_dump() | overrides))


def test_a_null_world_rejects_at_the_nominal_rate_before_and_after_adjustment() -> None:
    settings = _settings()
    raw, family = [], []
    for seed in range(SEEDS):
        predictions, items = _world(np.random.default_rng(seed), 200)
        rows = comparisons(predictions, items, [("a", "b")], settings, seed)
        raw += [r["p_mcnemar"] < 0.05 for r in rows]
        family.append(any(r["differs"] for r in rows))
    rate, familywise = float(np.mean(raw)), float(np.mean(family))
    allowance = 3 * np.sqrt(0.05 * 0.95 / SEEDS)  # three standard errors of a rate over the seeds
    assert 0.01 <= rate <= 0.05 + allowance, rate  # McNemar's exact test is at or below its level
    assert familywise <= 0.05 + allowance, familywise  # Holm holds the family-wise rate over the three conditions


def test_an_identical_copy_never_differs_and_says_why() -> None:
    predictions, items = _world(np.random.default_rng(0), 50)
    a = predictions.filter(pl.col("model") == "a")
    copy = pl.concat([a, a.with_columns(pl.lit("b").alias("model"))])
    rows = comparisons(copy, items, [("a", "b")], _settings(), 0)
    assert all(r["p_mcnemar"] == 1.0 and not r["differs"] and r["difference"] == 0.0 for r in rows)
    # paired: the two answers of an item are resampled together, so a copy's interval has no width
    assert all(r["difference_ci_low"] == r["difference_ci_high"] == 0.0 for r in rows)
    assert all("no discordant pairs" in r["note"] for r in rows)


def test_a_planted_difference_is_detected_with_the_power_its_mde_predicts() -> None:
    n, subset = 400, 160
    settings = _settings(adjust="holm", bootstrap=200)
    # the MDE of a null world of this size says which planted difference the test should find 80% of the time
    predictions, items = _world(np.random.default_rng(1000), n)
    mde = float(np.median([r["mde"] for r in comparisons(predictions, items, [("a", "b")], settings, 0)]))
    shift = np.zeros(n)
    shift[:subset] = mde * n / subset  # b loses that much chance on a known subset of the items
    found = []
    for seed in range(SEEDS // 2):
        predictions, items = _world(np.random.default_rng(seed), n, shift)
        rows = comparisons(predictions, items, [("a", "b")], _settings(adjust="holm", bootstrap=20), seed)
        found += [r["p_mcnemar"] < settings.alpha for r in rows]
        assert np.mean([r["difference"] for r in rows]) > 0  # a minus b: b was made worse
    power = float(np.mean(found))
    assert abs(power - 0.8) <= 0.1, (mde, power)


def test_pairs_default_to_every_pair_of_models_and_name_configured_models() -> None:
    models = {name: {"adapter": "qwen2_5_vl", "path": "unused"} for name in ("m1", "m2", "m3")}
    bench = {"adapter": "generic", "path": "items.parquet", "answer_type": "multiple_choice"}
    base = {"benchmarks": {"b": bench}, "models": models, "check_paths": False}
    config = BlindspotConfig.model_validate(base)
    assert config.compare_pairs() == [("m1", "m2"), ("m1", "m3"), ("m2", "m3")]
    chosen = BlindspotConfig.model_validate(base | {"compare": {"pairs": [["m3", "m1"]]}})
    assert chosen.compare_pairs() == [("m3", "m1")]
    with pytest.raises(ValueError, match=r"compare\.pairs names unconfigured models: nope"):
        BlindspotConfig.model_validate(base | {"compare": {"pairs": [["m1", "nope"]]}})
    with pytest.raises(ValueError, match="two different models"):
        CompareConfig.model_validate({"pairs": [["m1", "m1"]]})


def test_each_swap_hybrid_is_compared_with_its_base() -> None:
    rows = [{"pair": "p", "benchmark": "bench", "spec": spec, "item_id": f"i{k}", "family": "blur", "level": 0,
             "param": 1.0, "outcome": "correct" if right else "wrong", "score": float(right)}
            for spec, answers in (("base", [1, 0, 0, 0]), ("layer_2", [1, 1, 1, 1]), ("donor", [1, 1, 1, 0]))
            for k, right in enumerate(answers)]  # fmt: skip
    frame, pairs = hybrid_answers(pl.DataFrame(rows))
    assert pairs == [("p:donor", "p:base"), ("p:layer_2", "p:base")]
    items = pl.DataFrame({"item_id": [f"i{k}" for k in range(4)], "image_keys": [[f"g{k}"] for k in range(4)]})
    found = {r["model_a"]: r for r in comparisons(frame, items, pairs, _settings(), 0, "swap")}
    assert found["p:layer_2"]["difference"] == pytest.approx(0.75) and found["p:layer_2"]["only_a"] == 3
    assert found["p:donor"]["difference"] == pytest.approx(0.5) and {r["kind"] for r in found.values()} == {"swap"}
