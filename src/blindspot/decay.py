"""The decay step: docs/method.md §1 and §4 from a predictions table. CPU only.

Per (family, level): the identical-answer rate E_j (parsed answer equals the clean one), the evidence-based
survival rate (the clean answer stays the top option by at least ``margin_threshold`` nats), accuracy, accuracy on
the C=1 subset, and outcome counts (unparsed and abstain included). Per benchmark: the C rate (the answer never
changes along the blur ladder) with its chance level, the same with evidence-based survival, MG = S_v - S_wv, and
the shares of each item class. Every rate comes with a seeded percentile bootstrap interval over items.

Item classes (per item): ``fine_visual`` (its answer does not survive the blur ladder), ``coarse_visual``
(survives blur, not blank / noise / no image), ``language_prior`` (survives everything), ``unparsed`` (no clean
answer to follow). ``class_identity`` uses identical answers; ``class_margin`` uses the option log-probs where they
exist; ``class`` is the margin-based one where available. Identity alone counts chance agreement as survival: a
binary item whose blurred answers default to one option keeps its clean answer half the time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from blindspot.atomic import atomic_output
from blindspot.benchmarks import get_benchmark
from blindspot.config import DecayConfig
from blindspot.contracts.answers import chance_options
from blindspot.contracts.conditions import NONE_FAMILY, Condition
from blindspot.contracts.tables import DECAY_ITEMS_SCHEMA, DECAY_METRICS_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.provenance import provenance
from blindspot.stages import DecaySlice, JobContext, Paths
from blindspot.tables import read_provenance, write_table

CLASSES = ("fine_visual", "coarse_visual", "language_prior", "unparsed")


class DecayError(BlindspotError):
    """The predictions cannot support the decay metrics (one line)."""


@dataclass
class Grid:
    """Predictions as item x condition arrays (items in first-seen order, conditions sorted)."""

    item_ids: list[str]
    answer_types: list[str]
    n_options: np.ndarray  # (items,) float, NaN where not a closed answer space
    conditions: list[Condition]
    parsed: np.ndarray  # (items, conditions) object: str or None
    outcome: np.ndarray  # (items, conditions) object
    score: np.ndarray  # (items, conditions) float
    margin: np.ndarray  # (items, conditions) float: clean answer's log-prob minus the best other; NaN if none

    def column(self, family: str, level: int) -> int:
        for index, c in enumerate(self.conditions):
            if c.family == family and c.level == level:
                return index
        raise KeyError(f"{family}/{level}")

    def levels(self, family: str) -> list[int]:
        return sorted(c.level for c in self.conditions if c.family == family)


def build_grid(predictions: pl.DataFrame, clean: tuple[str, int]) -> Grid:
    keys = predictions.select("family", "level", "param").unique().sort("family", "level")
    conditions = [Condition(r["family"], r["level"], r["param"]) for r in keys.iter_rows(named=True)]
    if not any((c.family, c.level) == clean for c in conditions):
        raise DecayError(f"predictions have no clean condition {clean[0]}/{clean[1]}; nothing to compare against")
    firsts = predictions.unique("item_id", keep="first", maintain_order=True)
    item_ids = firsts["item_id"].to_list()
    row_of = {item: i for i, item in enumerate(item_ids)}
    col_of = {(c.family, c.level): j for j, c in enumerate(conditions)}
    shape = (len(item_ids), len(conditions))
    parsed = np.full(shape, None, dtype=object)
    outcome = np.full(shape, None, dtype=object)
    score = np.full(shape, np.nan)
    logprobs: dict[tuple[int, int], dict[str, float]] = {}
    for r in predictions.iter_rows(named=True):
        i, j = row_of[r["item_id"]], col_of[(r["family"], r["level"])]
        if outcome[i, j] is not None:
            raise DecayError(f"item '{r['item_id']}' has two predictions for {r['family']}/{r['level']}")
        parsed[i, j], outcome[i, j], score[i, j] = r["parsed"], r["outcome"], r["score"]
        if r["option_labels"] is not None:
            logprobs[(i, j)] = dict(zip(r["option_labels"], r["option_logprobs"], strict=True))
    missing = [(item_ids[i], conditions[j]) for i, j in zip(*np.nonzero(outcome == None), strict=True)]  # noqa: E711
    if missing:
        item, c = missing[0]
        raise DecayError(f"item '{item}' has no prediction for {c.family}/{c.level} ({len(missing)} missing in all)")

    clean_col = col_of[clean]
    margin = np.full(shape, np.nan)
    for (i, j), lp in logprobs.items():
        answer = parsed[i, clean_col]
        if answer in lp and len(lp) > 1:
            margin[i, j] = lp[answer] - max(v for k, v in lp.items() if k != answer)
    n_options = np.array(
        [chance_options(r["answer_type"], r["n_options"]) or np.nan for r in firsts.iter_rows(named=True)],
        dtype=float,
    )
    return Grid(item_ids, firsts["answer_type"].to_list(), n_options, conditions, parsed, outcome, score, margin)


class Bootstrap:
    """Percentile intervals from one shared set of item resamples (seeded)."""

    def __init__(self, n_items: int, resamples: int, confidence: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.index = rng.integers(0, n_items, size=(resamples, n_items)) if n_items else np.zeros((0, 0), int)
        self.alpha = (1 - confidence) / 2

    def interval(self, statistic: np.ndarray) -> tuple[float | None, float | None]:
        finite = statistic[np.isfinite(statistic)]
        if finite.size == 0:
            return None, None
        return float(np.quantile(finite, self.alpha)), float(np.quantile(finite, 1 - self.alpha))

    def mean(self, values: np.ndarray, mask: np.ndarray) -> tuple[float | None, float | None, float | None, int]:
        """Mean of ``values`` over items where ``mask`` holds: (value, low, high, n)."""
        n = int(mask.sum())
        if n == 0:
            return None, None, None, 0
        value = float(values[mask].mean())
        v = np.where(mask, values, 0.0)[self.index]
        m = mask[self.index]
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = v.sum(1) / m.sum(1)
        return (value, *self.interval(stats), n)

    def difference(self, a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None, float | None, int]:
        """Mean of a minus mean of b over all items, with its interval."""
        if a.size == 0:
            return None, None, None, 0
        return (float(a.mean() - b.mean()), *self.interval(a[self.index].mean(1) - b[self.index].mean(1)), a.size)


def _survives(grid: Grid, family: str, clean_col: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(identity, margin) survival over every level of ``family`` except the clean one: (items,) bool / float.

    Margin survival is NaN for items without option log-probs."""
    cols = [grid.column(family, lv) for lv in grid.levels(family) if grid.column(family, lv) != clean_col]
    clean = grid.parsed[:, clean_col]
    identical = np.ones(len(grid.item_ids), dtype=bool)
    margin_ok = np.ones(len(grid.item_ids), dtype=float)
    for j in cols:
        identical &= np.array([p is not None and p == c for p, c in zip(grid.parsed[:, j], clean, strict=True)])
        margin_ok = np.where(np.isnan(grid.margin[:, j]), np.nan, margin_ok * (grid.margin[:, j] >= threshold))
    return identical, margin_ok


def _classify(blur: np.ndarray, coarse: list[np.ndarray], clean_ok: np.ndarray) -> np.ndarray:
    out = np.where(blur, "language_prior", "fine_visual").astype(object)
    for survived in coarse:
        out[blur & ~survived] = "coarse_visual"
    out[~clean_ok] = "unparsed"
    return out


def decay_metrics(grid: Grid, config: DecayConfig, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(metric rows, item rows) for one model x benchmark."""
    blur = config.blur_family
    clean_col = grid.column(blur, 0)
    n = len(grid.item_ids)
    boot = Bootstrap(n, config.bootstrap, config.confidence, seed)
    clean = grid.parsed[:, clean_col]
    clean_ok = np.array([grid.outcome[i, clean_col] in {"correct", "wrong"} for i in range(n)])
    has_margin = ~np.isnan(grid.margin[:, clean_col])

    c_identity, c_margin = _survives(grid, blur, clean_col, config.margin_threshold)
    c_identity &= clean_ok
    coarse_identity, coarse_margin = [], []
    for family in config.coarse_families:
        if grid.levels(family):
            ident, marg = _survives(grid, family, clean_col, config.margin_threshold)
            coarse_identity.append(ident)
            coarse_margin.append(marg)

    rows: list[dict[str, Any]] = []

    def add(family: str, level: int, param: float | None, metric: str, stat: tuple) -> None:
        value, low, high, count = stat
        rows.append(
            {
                "family": family,
                "level": level,
                "param": param,
                "metric": metric,
                "value": value,
                "ci_low": low,
                "ci_high": high,
                "n": count,
            }
        )

    everyone = np.ones(n, dtype=bool)
    for j, c in enumerate(grid.conditions):
        same = np.array([p is not None and p == q for p, q in zip(grid.parsed[:, j], clean, strict=True)], dtype=float)
        add(c.family, c.level, c.param, "identical_rate", boot.mean(same, clean_ok))
        margin_mask = clean_ok & ~np.isnan(grid.margin[:, j])
        survived = np.nan_to_num(grid.margin[:, j]) >= config.margin_threshold
        add(c.family, c.level, c.param, "margin_survival_rate", boot.mean(survived.astype(float), margin_mask))
        add(c.family, c.level, c.param, "accuracy", boot.mean(grid.score[:, j], everyone))
        add(c.family, c.level, c.param, "accuracy_c1", boot.mean(grid.score[:, j], c_identity))
        for outcome in ("correct", "wrong", "unparsed", "abstain"):
            count = int((grid.outcome[:, j] == outcome).sum())
            add(c.family, c.level, c.param, f"n_{outcome}", (float(count), None, None, n))

    ladder = len(grid.levels(blur)) - 1
    add("all", -1, None, "c_rate", boot.mean(c_identity.astype(float), clean_ok))
    margin_mask = clean_ok & has_margin
    add("all", -1, None, "c_rate_margin", boot.mean(np.nan_to_num(c_margin), margin_mask))
    chance = (1.0 / grid.n_options) ** ladder
    add("all", -1, None, "c_chance", boot.mean(np.nan_to_num(chance), clean_ok & np.isfinite(chance)))
    if grid.levels(NONE_FAMILY):
        mg = boot.difference(grid.score[:, clean_col], grid.score[:, grid.column(NONE_FAMILY, 1)])
        add("all", -1, None, "mg", mg)
    add("all", -1, None, "ml", (None, None, None, 0))  # needs S_t, the base LLM alone: not run by this stage

    class_identity = _classify(c_identity, coarse_identity, clean_ok)
    margin_blur = np.nan_to_num(c_margin).astype(bool)
    class_margin = _classify(margin_blur, [np.nan_to_num(m).astype(bool) for m in coarse_margin], clean_ok)
    final = np.where(has_margin, class_margin, class_identity)
    for name in CLASSES:
        add("all", -1, None, f"share_{name}", boot.mean((final == name).astype(float), everyone))
        add("all", -1, None, f"share_{name}_identity", boot.mean((class_identity == name).astype(float), everyone))

    items = []
    for i, item_id in enumerate(grid.item_ids):
        items.append(
            {
                "item_id": item_id,
                "answer_type": grid.answer_types[i],
                "clean_answer": clean[i],
                "clean_outcome": grid.outcome[i, clean_col],
                "consecutive_identical": bool(c_identity[i]) if clean_ok[i] else None,
                "consecutive_margin": bool(c_margin[i]) if clean_ok[i] and has_margin[i] else None,
                "class_identity": class_identity[i],
                "class_margin": class_margin[i] if has_margin[i] else None,
                "class": final[i],
                "vision_indispensable": final[i] in {"fine_visual", "coarse_visual"},
            }
        )
    return rows, items


def official_rows(predictions: pl.DataFrame, adapter: str) -> list[dict[str, Any]]:
    """The benchmark's official scores (its registry ``aggregate`` hook) per condition, as metric rows."""
    spec = get_benchmark(adapter)
    rows = []
    for key, group in predictions.group_by(["family", "level", "param"], maintain_order=True):
        family, level, param = key
        for score in spec.aggregate(group):
            rows.append(
                {
                    "family": family,
                    "level": level,
                    "param": param,
                    "metric": f"official_{score['metric']}",
                    "value": score["value"],
                    "ci_low": score.get("ci_low"),
                    "ci_high": score.get("ci_high"),
                    "n": group["item_id"].n_unique(),
                }
            )
    return rows


def decay_benchmark(
    predictions_path: Path, config: DecayConfig, seed: int, outputs: Paths, model: str, bench: str
) -> int:
    """Write the metrics, the per-item classes and the vision-indispensable manifest to ``outputs``."""
    predictions = pl.read_parquet(predictions_path)
    if predictions.is_empty():
        raise DecayError(f"'{predictions_path}' has no predictions")
    grid = build_grid(predictions, (config.blur_family, 0))
    metric_rows, item_rows = decay_metrics(grid, config, seed)
    upstream = read_provenance(predictions_path)
    adapter = upstream.get("adapter", "generic")
    metric_rows += official_rows(predictions, adapter)
    record = provenance(
        "decay",
        {"decay": config, "seed": seed},
        predictions=upstream.get("config_hash"),
        model_name=model,
        benchmark=bench,
        adapter=adapter,
    )
    identity = {"model": model, "benchmark": bench}
    write_table([identity | r for r in item_rows], DECAY_ITEMS_SCHEMA, record, outputs["classes"])
    manifest = {
        "benchmark": bench,
        "model": model,
        "classes": ["fine_visual", "coarse_visual"],
        "class_basis": "margin where option log-probs exist, identity otherwise",
        "margin_threshold": config.margin_threshold,
        "item_ids": [r["item_id"] for r in item_rows if r["vision_indispensable"]],
    }
    with atomic_output(outputs["manifest"]) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    write_table([identity | r for r in metric_rows], DECAY_METRICS_SCHEMA, record, outputs["metrics"])
    return len(item_rows)


def run(config: DecaySlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    n = decay_benchmark(inputs["predictions"], config.decay, config.seed, outputs, job.model, job.bench)
    return f"decay metrics for {job.model} on {job.bench}: {n} items"
