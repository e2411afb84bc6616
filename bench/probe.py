"""Batched all-layer probe training against one scikit-learn MLPClassifier per layer, on the same features.

    python bench/probe.py [--items 1500] [--layers 12] [--hidden-dim 256]

Features: synthetic residual streams where a 4-way label is decodable with a different signal strength at each
layer (weak early, strong in the middle, weaker late, with a nonlinear component). Both sides train a 3-layer MLP
(two hidden layers of 64) per layer on the same grouped 5-fold split and standardised features; held-out
accuracy is over all samples, each predicted by the probe that did not see its fold. The batched side uses the
pipeline's default ProbeConfig; scikit-learn uses its own defaults (adam, lr 1e-3, batch 200, up to 200 epochs,
stopping when the loss stops improving), i.e. trained to convergence. Prints seconds for both, their ratio
(target: >= 10x) and the held-out accuracy per layer (target: equal or better).
"""

from __future__ import annotations

import time
import warnings

import _cli as cli  # bench/_cli.py
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from blindspot.config import ProbeConfig
from blindspot.stages.probe import fit_heldout, grouped_folds


def synthetic(n: int, layers: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(size=(n, layers, d)).astype(np.float32)
    strength = np.sin(np.linspace(0.2, np.pi - 0.2, layers)) * 1.6
    for layer in range(layers):
        means = rng.normal(size=(4, d)) / np.sqrt(d) * 4
        x[:, layer] += strength[layer] * means[y]
        x[:, layer, 0] += strength[layer] * np.where(y % 2 == 0, 1.0, -1.0) * np.abs(x[:, layer, 1])  # nonlinear
    groups = np.array([f"img{i // 2}" for i in range(n)])
    return x, y, groups


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if args.smoke:
        args.items, args.layers, args.hidden_dim, args.folds = 60, 2, 8, 2
    x, y, groups = synthetic(args.items, args.layers, args.hidden_dim, seed=0)
    folds = grouped_folds(groups, args.folds, seed=0)
    config = ProbeConfig(folds=args.folds)

    # Warm-up: torch's one-time per-process start-up (thread pools, kernel selection) is not probe training.
    fit_heldout(
        torch.from_numpy(x[:64]),
        torch.from_numpy(y[:64, None]).long(),
        torch.from_numpy(folds[:64]),
        args.folds,
        4,
        ProbeConfig(folds=args.folds, epochs=1),
        depth=3,
        seed=0,
    )
    start = time.perf_counter()
    probs = fit_heldout(
        torch.from_numpy(x),
        torch.from_numpy(y[:, None]).long(),
        torch.from_numpy(folds),
        args.folds,
        4,
        config,
        depth=3,
        seed=0,
    )
    ours_s = time.perf_counter() - start
    ours = (probs[:, 0].argmax(-1).numpy() == y[:, None]).mean(0)

    start = time.perf_counter()
    sk = np.zeros(args.layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for layer in range(args.layers):
            correct = 0
            for fold in range(args.folds):
                train, test = folds != fold, folds == fold
                scaler = StandardScaler().fit(x[train, layer])
                clf = MLPClassifier(hidden_layer_sizes=(64, 64), random_state=0)
                clf.fit(scaler.transform(x[train, layer]), y[train])
                correct += (clf.predict(scaler.transform(x[test, layer])) == y[test]).sum()
            sk[layer] = correct / len(y)
    sk_s = time.perf_counter() - start

    print(
        f"probe benchmark: {args.items} items, {args.layers} layers, hidden {args.hidden_dim}, {args.folds}-fold "
        f"grouped, 3-layer MLP (64, 64); batched: {config.epochs} epochs, lr {config.lr}, batch {config.batch_size};"
        f" sklearn: its defaults; {torch.get_num_threads()} torch threads; torch warmed up"
    )
    print(f"  scikit-learn MLPClassifier per layer and fold : {sk_s:8.2f} s")
    print(f"  batched all-layer probes (one tensor program) : {ours_s:8.2f} s")
    print(f"  ratio                                          : {sk_s / ours_s:8.2f}x   (target >= 10x)")
    print("  held-out accuracy per layer (batched | sklearn):")
    print("   " + "  ".join(f"{a:.3f}|{b:.3f}" for a, b in zip(ours, sk, strict=True)))
    print(
        f"  mean over layers: batched {ours.mean():.3f}, sklearn {sk.mean():.3f}; best layer: batched "
        f"{ours.max():.3f}, sklearn {sk.max():.3f}"
    )


if __name__ == "__main__":
    main()
