"""Probe sanity: a planted label is found at its layer, shuffled labels give chance, selectivity is as defined."""

from __future__ import annotations

import numpy as np
import pytest

from blindspot.config import ProbeConfig
from blindspot.errors import BlindspotError
from blindspot.probes import ProbeData, control_labels, grouped_folds, run_probes

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


def test_planted_label_peaks_at_its_layer() -> None:
    rows = run_probes(planted(layer=3), "last_token", CONFIG, seed=0)
    for probe in ("mlp", "linear"):
        accuracy = layer_accuracy(rows, probe)
        assert int(np.argmax(accuracy)) == 3
        assert accuracy[3] > 0.95
        assert max(accuracy[:3] + accuracy[4:]) < 0.65


def test_shuffled_labels_give_chance() -> None:
    data = planted(layer=3)
    shuffled = list(np.random.default_rng(1).permutation(data.labels["gold"]))
    data.labels = {"gold": shuffled}
    data.gold = shuffled
    accuracy = layer_accuracy(run_probes(data, "last_token", CONFIG, seed=0))
    assert max(accuracy) < 0.62 and min(accuracy) > 0.38


def test_selectivity_separates_the_task_from_the_control() -> None:
    rows = run_probes(planted(layer=1), "last_token", CONFIG, seed=0)
    # The control task's labels are one random label per item type (Hewitt & Liang).
    types = [f"t{i % 3}" for i in range(30)]
    labels = control_labels(types, 4, seed=0)
    for t in set(types):
        assert len({labels[i] for i in range(30) if types[i] == t}) == 1
    # Features that carry the label but not the type: the task is decodable, the control is not.
    at_layer = [r for r in rows if r["layer"] == 1 and r["probe"] == "mlp" and r["subset"] == "all"]
    assert all(r["selectivity"] > 0.3 for r in at_layer)


def test_folds_never_split_a_source_image() -> None:
    groups = np.array([f"img{i // 3}" for i in range(90)])
    folds = grouped_folds(groups, 5, seed=0)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    assert np.array_equal(folds, grouped_folds(groups, 5, seed=0))
    with pytest.raises(BlindspotError, match=r"probe\.folds: 5 folds need at least 5 source images"):
        grouped_folds(np.array(["a", "b"]), 5, seed=0)
