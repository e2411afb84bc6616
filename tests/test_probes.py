"""Probe sanity: a planted label is found at its layer, shuffled labels give chance, selectivity is as defined."""

from __future__ import annotations

import numpy as np
import pytest

from blindspot.config import ProbeConfig
from blindspot.errors import BlindspotError
from blindspot.stages.probe import ProbeData, control_labels, grouped_folds, run_probes

CONFIG = ProbeConfig(folds=4, epochs=40, hidden=32, batch_size=128, lr=5e-3)


def planted(n_items: int = 400, n_layers: int = 5, d: int = 16, layer: int = 3, seed: int = 0) -> ProbeData:
    """Features where a binary label is linearly decodable at ``layer`` only (noise elsewhere)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_items)
    features = rng.normal(size=(n_items, 2, n_layers, d)).astype(np.float32)
    direction = rng.normal(size=d)
    features[:, :, layer] += 3.0 * (labels * 2 - 1)[:, None, None] * direction / np.linalg.norm(direction)
    groups = np.array([f"img{i // 2}" for i in range(n_items)])  # two items per source image
    types = [f"type{i % 10}" for i in range(n_items)]
    gold = [str(x) for x in labels]
    return ProbeData(features, ["blur/0", "blur/7"], groups, {"gold": list(gold)}, types, gold, [None] * n_items)


def layer_accuracy(rows: list[dict], probe: str = "mlp", level: str = "blur/0") -> list[float]:
    chosen = [r for r in rows if r["probe"] == probe and r["level"] == level and r["subset"] == "all"]
    return [r["accuracy"] for r in sorted(chosen, key=lambda r: r["layer"])]


@pytest.mark.slow
def test_planted_label_peaks_at_its_layer() -> None:
    rows = run_probes(planted(layer=3), "last_token", CONFIG, seed=0)
    for probe in ("mlp", "linear"):
        accuracy = layer_accuracy(rows, probe)
        assert int(np.argmax(accuracy)) == 3
        assert accuracy[3] > 0.95
        assert max(accuracy[:3] + accuracy[4:]) < 0.65


@pytest.mark.slow
def test_shuffled_labels_give_chance() -> None:
    data = planted(layer=3)
    shuffled = list(np.random.default_rng(1).permutation(data.labels["gold"]))
    data.labels = {"gold": shuffled}
    data.gold = shuffled
    accuracy = layer_accuracy(run_probes(data, "last_token", CONFIG, seed=0))
    assert max(accuracy) < 0.62 and min(accuracy) > 0.38


def test_the_control_permutes_labels_within_each_type() -> None:
    types = [f"t{i % 3}" for i in range(30)]
    labels = np.array([i % 4 for i in range(30)])
    labels[5] = -1  # no label: stays unlabelled
    control = control_labels(types, labels, seed=0)
    assert control[5] == -1
    for t in set(types):
        members = [i for i in range(30) if types[i] == t and labels[i] >= 0]
        assert sorted(control[members]) == sorted(labels[members])  # each type keeps its label frequencies
    assert not np.array_equal(control, labels)


def typed(n_items: int = 600, n_types: int = 10, informative: bool = True, seed: int = 0) -> ProbeData:
    """Features that name the item's question type (one-hot, easy to memorise) and, if ``informative``, also
    carry its label; labels lean on the type (each type's majority label holds for 80% of its items)."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, n_types, n_items)
    labels = np.where(rng.random(n_items) < 0.8, types % 2, 1 - types % 2)
    features = rng.normal(scale=0.3, size=(n_items, 1, 2, 16)).astype(np.float32)
    features[np.arange(n_items), :, :, types] += 3.0  # the type, at every layer
    if informative:
        features[:, :, 1, 15] += 3.0 * (labels * 2 - 1)[:, None]  # the label, at layer 1 only
    gold = [str(x) for x in labels]
    groups = np.array([f"img{i}" for i in range(n_items)])
    return ProbeData(features, ["blur/0"], groups, {"gold": gold}, [f"q{t}" for t in types], gold, [None] * n_items)


def test_selectivity_separates_an_informative_feature_from_a_memorisable_one() -> None:
    """Ten question types: a probe memorises them at once. A feature that only names the type reaches the type's
    majority accuracy (0.8) on task and control alike: selectivity about 0. Where the label itself is readable
    (layer 1), task accuracy exceeds control accuracy. Per-type random labels (Hewitt & Liang's control as such)
    would be memorised from the type and give a control accuracy near 1, so selectivity would never be positive."""
    rows = run_probes(typed(informative=True), "last_token", CONFIG, seed=0)
    for probe in ("mlp", "linear"):
        by_layer = {r["layer"]: r for r in rows if r["probe"] == probe and r["subset"] == "all"}
        assert by_layer[0]["accuracy"] > 0.65  # the type is read (the labels lean on it) ...
        assert abs(by_layer[0]["selectivity"]) < 0.06  # ... and that is all: no selectivity
        assert by_layer[1]["accuracy"] > 0.95 and by_layer[1]["selectivity"] > 0.15
        assert by_layer[1]["selectivity_ci_low"] > 0.05  # across folds, not a fluke of one split
        low, high = by_layer[1]["accuracy_ci_low"], by_layer[1]["accuracy_ci_high"]
        assert low <= by_layer[1]["accuracy"] <= high


def test_folds_never_split_a_source_image() -> None:
    groups = np.array([f"img{i // 3}" for i in range(90)])
    folds = grouped_folds(groups, 5, seed=0)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    assert np.array_equal(folds, grouped_folds(groups, 5, seed=0))
    with pytest.raises(BlindspotError, match=r"probe\.folds: 5 folds need at least 5 source images"):
        grouped_folds(np.array(["a", "b"]), 5, seed=0)


@pytest.mark.parametrize("offset", [1e4, 1e5])
def test_standardisation_holds_on_large_offset_dimensions(offset: float) -> None:
    """Real Qwen activations have dimensions whose mean dwarfs their spread. E[x^2] - mean^2 in float32 gives
    garbage (even negative variances) there; the two-pass standardisation matches a float64 reference."""
    import torch

    from blindspot.stages.probe import fold_standardisation, global_mean

    rng = np.random.default_rng(0)
    x64 = rng.normal(size=(2000, 3, 8))
    x64[:, 1, :4] = offset + 2.0 * rng.normal(size=(2000, 4))  # outlier dimensions: mean 1e4 / 1e5, std 2
    folds = rng.integers(0, 4, 2000)
    train = torch.from_numpy(folds[:, None] != np.arange(4)[None])
    x = torch.from_numpy(x64.astype(np.float32))
    centre = global_mean(x)
    mean, std = fold_standardisation(x - centre, train)
    for f in range(4):
        np.testing.assert_allclose(std[f].numpy(), x64[folds != f].std(axis=0), rtol=1e-3)
        np.testing.assert_allclose((mean[f] + centre).numpy(), x64[folds != f].mean(axis=0), rtol=1e-6, atol=1e-3)
    naive = (x**2).mean(0) - x.mean(0) ** 2  # what a one-pass float32 formula gives
    assert not np.allclose(naive[1, :4].numpy(), 4.0, rtol=0.1)  # the case the two-pass method exists for


@pytest.mark.slow
def test_a_probe_reads_a_label_next_to_outlier_dimensions() -> None:
    data = planted(layer=3)
    data.features[:, :, 3, :4] += 1e5  # huge offsets on other dimensions of the planted layer
    accuracy = layer_accuracy(run_probes(data, "last_token", CONFIG, seed=0))
    assert accuracy[3] > 0.95


def test_held_out_predictions_never_see_their_own_fold() -> None:
    """The probe that predicts fold 0 is trained and standardised on the other folds only, so changing one fold-0
    sample cannot move its predictions for the other fold-0 samples (up to float rounding from the global centring,
    which is shift-invariant). Standardising with held-out statistics, or evaluating in-sample, would."""
    import torch

    from blindspot.stages.probe import fit_heldout

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(200, 2, 8)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 2, size=(200, 1)))
    folds = torch.from_numpy(np.arange(200) % 4)
    before = fit_heldout(x, labels, folds, 4, 2, CONFIG, depth=3, seed=0)
    changed = x.clone()
    changed[0] += 25.0  # sample 0 is in fold 0
    after = fit_heldout(changed, labels, folds, 4, 2, CONFIG, depth=3, seed=0)
    others = (folds == 0) & (torch.arange(200) != 0)
    assert (after[others] - before[others]).abs().max() < 1e-3
    assert (after[folds != 0] - before[folds != 0]).abs().max() > 1e-3  # the other probes did train on it


def test_p_prior_follows_features_that_encode_the_prior() -> None:
    """Items whose prior answer differs from gold (a fifth of them): at layer 0 the features encode gold, at
    layer 1 the prior (a model that has started to follow the hint). On those items the gold probe gives the gold
    class at layer 0 and the prior class at layer 1."""
    rng = np.random.default_rng(0)
    n = 500
    gold = rng.integers(0, 2, n)
    differs = rng.random(n) < 0.2
    prior = np.where(differs, 1 - gold, gold)
    features = rng.normal(scale=0.5, size=(n, 1, 2, 8)).astype(np.float32)
    features[:, 0, 0, 0] += 3.0 * (gold * 2 - 1)
    features[:, 0, 1, 0] += 3.0 * (prior * 2 - 1)
    g, p = [str(v) for v in gold], [str(v) for v in prior]
    groups = np.array([f"img{i}" for i in range(n)])
    data = ProbeData(features, ["blur/0"], groups, {"gold": g}, [f"q{i % 10}" for i in range(n)], g, p)
    rows = run_probes(data, "last_token", CONFIG, seed=0)
    curve = {r["layer"]: r for r in rows if r["probe"] == "mlp" and r["subset"] == "prior_differs"}
    assert curve[0]["p_gold"] > 0.8 and curve[0]["p_prior"] < 0.2
    assert curve[1]["p_prior"] > 0.6 and curve[1]["p_gold"] < 0.4


def test_targets_the_benchmark_cannot_support_are_reported_not_dropped() -> None:
    """A configured prior field no item carries, and a metadata target with one class: each is a row with no
    accuracy and its reason, beside the probed gold target."""
    data = planted(n_items=40, n_layers=2, layer=1)
    data.labels |= {"prior": [None] * 40, "metadata:colour": ["red"] * 40}
    data.sources = {"prior": "probe.prior_field 'prior_answer'", "metadata:colour": "probe.metadata_targets 'colour'"}
    rows = run_probes(data, "last_token", ProbeConfig(folds=2, epochs=2, hidden=8), seed=0)
    skipped = {r["target"]: r for r in rows if r["probe"] == "skipped"}
    assert set(skipped) == {"prior", "metadata:colour"}
    assert skipped["prior"]["note"] == "probe.prior_field 'prior_answer': no item of this benchmark carries it"
    assert "one class ('red') among 40 labelled items" in skipped["metadata:colour"]["note"]
    assert all("accuracy" not in r for r in skipped.values())
    assert {r["target"] for r in rows if r["probe"] == "mlp"} == {"gold"}
