"""Layer-wise probes (docs/method.md §2): every layer's probe trained at once, as one batched tensor program.

For a feature store ``(item, level, layer, hidden)`` and a target label per item, one 3-layer MLP probe (and a
linear baseline) per layer is trained on standardised features (per layer, from the training fold; Qwen has
high-norm outlier dimensions). Samples are (item, level) pairs; folds are seeded and grouped by source image, so
the blur copies of one image never straddle train and test.

Targets: ``gold`` (the answer), ``prior`` (the language-prior answer, where the benchmark defines one: VLMBias
``expected_bias``, the toy world's hint), ``metadata:KEY`` (any item metadata, e.g. the toy colour), and for each
a control task in the spirit of Hewitt & Liang: the target's labels permuted within each *item type* (the question
text), see :func:`control_labels`. Selectivity = accuracy - control accuracy: what the features say about an item
beyond its question type. Accuracy and selectivity carry t intervals across the folds.

Features are centred (a float64 mean) and standardised per fold by two passes: real Qwen activations have
dimensions whose mean dwarfs their spread, where E[x^2] - mean^2 in float32 is garbage.

Reported per layer and level on held-out folds: accuracy, and P(gold) / P(prior) (the probability the gold-target
probe gives the gold and the prior class; on items whose prior differs from gold this traces where the prior
takes over).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import nn

from blindspot.config import ProbeConfig
from blindspot.contracts.tables import PROBE_SKIPPED, PROBES_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.stages.slices import ProbeSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.statistics import grouped_folds, t_interval
from blindspot.store.hidden import HiddenStore
from blindspot.store.provenance import provenance
from blindspot.store.tables import read_frame, write_table


class BatchedProbes(nn.Module):
    """Independent probes for every (variant, fold, layer), evaluated as one tensor program of batched matmuls.

    Input ``(n, layers, d)``; output logits ``(variants, folds, layers, n, classes)``. Each fold's feature
    standardisation (mean and std of its training samples, per layer) is folded into the first weight matrix, so
    standardised copies of the features are never materialised. depth 3 is the MLP probe (d -> h -> h -> c, ReLU),
    depth 1 the linear baseline (d -> c). (An einsum formulation was 40x slower backwards on CPU.)"""

    mean: torch.Tensor
    inv_std: torch.Tensor

    def __init__(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        variants: int,
        classes: int,
        hidden: int,
        depth: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        folds, layers, d = mean.shape
        self.shape = (variants, folds, layers)
        probes = variants * folds * layers
        self.register_buffer("mean", mean)
        self.register_buffer("inv_std", 1 / std)
        sizes = [d, hidden, hidden, classes] if depth == 3 else [d, classes]

        def uniform(*shape: int, fan_in: int) -> nn.Parameter:
            return nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) / np.sqrt(fan_in))

        self.first = uniform(layers, d, variants * folds * sizes[1], fan_in=d)
        self.first_bias = nn.Parameter(torch.zeros(probes, 1, sizes[1]))
        self.weights = nn.ParameterList(uniform(probes, i, o, fan_in=i) for i, o in itertools.pairwise(sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(probes, 1, o)) for o in sizes[2:])

    def forward(self, x: Float[torch.Tensor, "n layers d"]) -> Float[torch.Tensor, "variants folds layers n classes"]:
        v, f, layers = self.shape
        n, _, d = x.shape
        out = self.first.shape[-1] // (v * f)
        w = self.first.view(layers, d, v, f, out) * self.inv_std.permute(1, 2, 0)[:, :, None, :, None]
        # shift[v, f, l] = mean[f, l] @ w[l, :, v, f]: the standardisation's offset, as one batched matmul
        per_fold = w.permute(0, 3, 1, 2, 4).reshape(layers * f, d, v * out)
        shift = torch.bmm(self.mean.permute(1, 0, 2).reshape(layers * f, 1, d), per_fold)
        shift = shift.view(layers, f, v, out).permute(2, 1, 0, 3).reshape(v * f * layers, 1, out)
        h = torch.bmm(x.transpose(0, 1), w.reshape(layers, d, v * f * out))  # (layers, n, v*f*out)
        h = h.view(layers, n, v * f, out).permute(2, 0, 1, 3).reshape(v * f * layers, n, out) - shift + self.first_bias
        for weight, bias in zip(self.weights, self.biases, strict=True):
            h = torch.bmm(torch.relu(h), weight) + bias
        return h.view(v, f, layers, n, -1)


def global_mean(x: Float[torch.Tensor, "n layers d"], chunk: int = 4096) -> Float[torch.Tensor, "layers d"]:
    """The mean over samples, accumulated in float64 chunk by chunk (no float64 copy of the features)."""
    total = torch.zeros(x.shape[1:], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        total += x[start : start + chunk].sum(0, dtype=torch.float64)
    return (total / max(1, x.shape[0])).to(x.dtype)


def fold_standardisation(
    x: Float[torch.Tensor, "n layers d"], train: Bool[torch.Tensor, "n folds"]
) -> tuple[Float[torch.Tensor, "folds layers d"], Float[torch.Tensor, "folds layers d"]]:
    """Per fold, the mean and standard deviation of its training samples, by two passes: the variance is the mean
    of squared deviations, never E[x^2] - mean^2, which cancels catastrophically in float32 on dimensions whose
    mean dwarfs their spread (real Qwen models have dimensions of mean ~1e4 and std ~1)."""
    weight = train.to(x.dtype)
    count = weight.sum(0).clamp(min=1)[:, None, None]
    mean = torch.einsum("nf,nld->fld", weight, x) / count
    var = torch.stack([(weight[:, f, None, None] * (x - mean[f]) ** 2).sum(0) for f in range(train.shape[1])])
    return mean, (var / count).sqrt().clamp(min=1e-6)


def fit_heldout(
    x: Float[torch.Tensor, "n layers d"],
    labels: Int[torch.Tensor, "n variants"],
    folds: Int[torch.Tensor, " n"],
    n_folds: int,
    classes: int,
    config: ProbeConfig,
    depth: int,
    seed: int,
) -> Float[torch.Tensor, "n variants layers classes"]:
    """Train every (variant, fold, layer) probe at once and return held-out probabilities.

    ``x`` (n, layers, d); ``labels`` (n, variants) class indices, -1 where a sample has no label; ``folds`` (n,).
    The probe of fold f trains on samples outside f; each sample is predicted by the probe of its own fold.
    Returns (n, variants, layers, classes)."""
    n, n_layers, _d = x.shape
    train = (folds[:, None] != torch.arange(n_folds, device=x.device)[None]) & (labels[:, :1] >= 0)  # (n, f)
    x = x - global_mean(x)  # shift-invariant for the probes; keeps float32 precise on large-offset dimensions
    mean, std = fold_standardisation(x, train)
    generator = torch.Generator().manual_seed(seed)
    model = BatchedProbes(mean, std, labels.shape[1], classes, config.hidden, depth, generator).to(x.device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator).to(x.device)
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            logits = model(x[idx]).permute(3, 4, 0, 1, 2)  # (b, c, v, f, l)
            target = labels[idx].clamp(min=0)[:, :, None, None].expand(-1, -1, n_folds, n_layers)
            loss = nn.functional.cross_entropy(logits, target, reduction="none")
            mask = (train[idx][:, None, :, None] & (labels[idx] >= 0)[:, :, None, None]).float()
            loss = (loss * mask).sum() / mask.sum().clamp(min=1)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        out = []
        for start in range(0, n, config.batch_size):
            logits = model(x[start : start + config.batch_size]).permute(3, 0, 1, 2, 4)  # (b, v, f, l, c)
            own = folds[start : start + config.batch_size]
            out.append(torch.softmax(logits[torch.arange(len(own)), :, own], dim=-1))  # (b, v, l, c)
        return torch.cat(out)


@dataclass
class ProbeData:
    features: np.ndarray  # (items, levels, layers, hidden) float32
    levels: list[str]
    groups: np.ndarray  # (items,) source image
    labels: dict[str, list[str | None]]  # target -> per item label
    types: list[str]  # item type for control tasks
    gold: list[str]
    prior: list[str | None]
    sources: dict[str, str] = field(default_factory=dict)
    """target -> where its labels come from (the config key), for a skipped target's note."""


def load_probe_data(store: HiddenStore, items_path: Path, feature: str, config: ProbeConfig) -> ProbeData:
    if feature not in store.features:
        raise BlindspotError(f"'{feature}' is not in '{store.path}'", key="probe.features")
    features = store.read(feature)
    item_ids = store.item_ids
    items = read_frame(items_path)
    by_id = {r["item_id"]: r for r in items.iter_rows(named=True)}
    rows = [by_id[i] for i in item_ids]
    meta = [json.loads(r["metadata"]) for r in rows]
    gold = [r["answer"] for r in rows]
    prior = [m.get(config.prior_field) if config.prior_field else None for m in meta]
    labels: dict[str, list[str | None]] = {"gold": list(gold)}
    sources = {"gold": "the benchmark's answers"}
    if config.prior_field:  # configured: probed, or reported as skipped where the benchmark lacks it
        labels["prior"] = prior
        sources["prior"] = f"probe.prior_field '{config.prior_field}'"
    for key in config.metadata_targets:
        labels[f"metadata:{key}"] = [None if m.get(key) is None else str(m.get(key)) for m in meta]
        sources[f"metadata:{key}"] = f"probe.metadata_targets '{key}'"
    return ProbeData(
        features=features,
        levels=store.levels,
        groups=np.array(store.groups),
        labels=labels,
        sources=sources,
        types=[r["question"] for r in rows],
        gold=gold,
        prior=prior,
    )


def control_labels(types: list[str], labels: np.ndarray, seed: int) -> np.ndarray:
    """The control task: each item type's labels permuted at random among its items (-1, no label, stays put).

    Hewitt & Liang give each word *type* one random label, which a probe can only fit by memorising types. A VQA
    benchmark has few types (question templates; the toy world has ten), and memorising ten types is trivial:
    control accuracy nears 1 and selectivity is never positive. Permuting labels within each type keeps every
    type's label frequencies, so a probe that reads only the question type scores the same on the task and the
    control; what the features say about the item beyond its type shows as task accuracy above control accuracy.
    This holds for few types and for many, and the label is per item (an item's levels share it)."""
    rng = np.random.default_rng(seed)
    out = labels.copy()
    by_type: dict[str, list[int]] = {}
    for i, t in enumerate(types):
        if labels[i] >= 0:
            by_type.setdefault(t, []).append(i)
    for t in sorted(by_type):
        members = np.array(by_type[t])
        out[members] = labels[rng.permutation(members)]
    return out


def run_probes(data: ProbeData, feature: str, config: ProbeConfig, seed: int) -> list[dict[str, Any]]:
    device = torch.device(
        "cuda"
        if config.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if config.device == "auto"
        else config.device
    )
    n_items, n_levels, n_layers, d = data.features.shape
    folds_items = grouped_folds(data.groups, config.folds, seed)
    x = torch.from_numpy(data.features.reshape(-1, n_layers, d)).to(device)  # samples = (item, level)
    folds = torch.from_numpy(np.repeat(folds_items, n_levels)).to(device)
    rows: list[dict[str, Any]] = []
    for target, labels in data.labels.items():
        keep = np.array([label is not None for label in labels])
        classes = sorted({label for label in labels if label is not None})
        if len(classes) < 2:
            rows.append(skipped_target(feature, target, data.sources.get(target, target), classes, int(keep.sum())))
            continue
        index = {c: i for i, c in enumerate(classes)}
        y_items = np.array([index[label] if label is not None else -1 for label in labels])
        control = control_labels(data.types, y_items, seed + 1)
        both = torch.from_numpy(np.repeat(np.stack([y_items, control], 1), n_levels, axis=0)).long().to(device)
        for depth, probe in ((3, "mlp"), (1, "linear")):
            heldout = fit_heldout(x, both, folds, config.folds, len(classes), config, depth, seed + depth)
            probs = heldout.cpu().numpy().reshape(n_items, n_levels, 2, n_layers, len(classes))
            rows += _summarise(
                data,
                feature,
                target,
                probe,
                probs[:, :, 0],
                probs[:, :, 1],
                y_items,
                control,
                keep,
                index,
                folds_items,
                config.confidence,
            )
    return rows


def skipped_target(feature: str, target: str, source: str, classes: list[str], labelled: int) -> dict[str, Any]:
    """The row that reports a target the benchmark cannot support (no label, or one class): no accuracy, the
    reason in ``note``, so the table and the report show it rather than dropping it."""
    if not classes:
        reason = f"{source}: no item of this benchmark carries it"
    else:
        reason = f"{source}: one class ({classes[0]!r}) among {labelled} labelled items; a probe needs two"
    return {
        "feature": feature,
        "target": target,
        "probe": PROBE_SKIPPED,
        "level": "all",
        "layer": -1,
        "subset": "all",
        "n": labelled,
        "n_classes": len(classes),
        "note": reason,
    }


def _summarise(
    data: ProbeData,
    feature: str,
    target: str,
    probe: str,
    probs: np.ndarray,
    control_probs: np.ndarray,
    y: np.ndarray,
    control: np.ndarray,
    keep: np.ndarray,
    index: dict[str, int],
    folds: np.ndarray,
    confidence: float,
) -> list[dict[str, Any]]:
    """Per level, layer and subset: held-out accuracy, control accuracy and selectivity (each with a t interval
    across the cross-validation folds), P(gold) and P(prior)."""
    rows = []
    gold_idx = np.array([index.get(g, -1) for g in data.gold])
    prior_idx = np.array([index.get(p, -1) if p is not None else -1 for p in data.prior])
    conflict = keep & (prior_idx >= 0) & (prior_idx != gold_idx)
    subsets = {"all": keep}
    if target == "gold" and conflict.any():
        subsets["prior_differs"] = conflict
    for li, level in enumerate(data.levels):
        for layer in range(probs.shape[2]):
            for subset, mask in subsets.items():
                p = probs[mask, li, layer]
                cp = control_probs[mask, li, layer]
                hits = (p.argmax(-1) == y[mask]).astype(float)
                control_hits = (cp.argmax(-1) == control[mask]).astype(float)
                acc, control_acc = float(hits.mean()), float(control_hits.mean())
                fold_of = folds[mask]
                per_fold = np.array([hits[fold_of == f].mean() for f in np.unique(fold_of)])
                per_fold_control = np.array([control_hits[fold_of == f].mean() for f in np.unique(fold_of)])
                acc_ci = t_interval(per_fold, confidence)
                sel_ci = t_interval(per_fold - per_fold_control, confidence)
                p_gold = p_prior = None
                if target == "gold":
                    g = gold_idx[mask]
                    p_gold = float(p[np.arange(len(g)), g].mean())
                    pr = prior_idx[mask]
                    valid = pr >= 0
                    p_prior = float(p[np.nonzero(valid)[0], pr[valid]].mean()) if valid.any() else None
                rows.append(
                    {
                        "feature": feature,
                        "target": target,
                        "probe": probe,
                        "level": level,
                        "layer": layer,
                        "subset": subset,
                        "accuracy": acc,
                        "accuracy_ci_low": acc_ci[0],
                        "accuracy_ci_high": acc_ci[1],
                        "control_accuracy": control_acc,
                        "selectivity": acc - control_acc,
                        "selectivity_ci_low": sel_ci[0],
                        "selectivity_ci_high": sel_ci[1],
                        "p_gold": p_gold,
                        "p_prior": p_prior,
                        "n": int(mask.sum()),
                        "n_classes": len(index),
                    }
                )
    return rows


def probe_benchmark(
    hidden_store: Path, items_path: Path, config: ProbeConfig, seed: int, out: Path, model: str, bench: str
) -> list[dict[str, Any]]:
    store = HiddenStore(hidden_store)
    rows: list[dict[str, Any]] = []
    for feature in config.features:
        data = load_probe_data(store, items_path, feature, config)
        rows += run_probes(data, feature, config, seed)
    record = provenance(
        "probe",
        {"probe": config, "seed": seed},
        model_name=model,
        benchmark=bench,
        hidden=store.provenance.get("config_hash"),
    )
    write_table([{"model": model, "benchmark": bench} | r for r in rows], PROBES_SCHEMA, record, out)
    return rows


def run(config: ProbeSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    rows = probe_benchmark(
        inputs["hidden"], inputs["item_table"], config.probe, config.seed, outputs["probes"], job.model, job.bench
    )
    skipped = sorted({f"{r['target']} ({r['note']})" for r in rows if r["probe"] == PROBE_SKIPPED})
    line = f"probed {job.model} on {job.bench}: {len(rows) - len(skipped)} rows"
    return line + (f"; skipped targets: {'; '.join(skipped)}" if skipped else "")
