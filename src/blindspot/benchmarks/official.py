"""Official aggregate scores of a benchmark (POPE's F1, HallusionBench's question-pair accuracy, ...) per
rendered condition, each with a cluster-bootstrap interval.

A benchmark's ``official`` hook receives an :class:`OfficialInput`: one condition's predictions joined with
the items' gold and metadata, and a weight matrix whose row 0 is all ones (the point estimate) and whose other
rows count how often each item is drawn in one bootstrap resample (items of one cluster, the benchmark's
``cluster``, are drawn together). Every metric is written once, as a weighted statistic, so the point estimate
and its interval come from the same code. The helpers below cover the shapes the official scorers take: a
weighted mean, "every question of a group correct", and a mean of group means.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from jaxtyping import Float

from blindspot.statistics import ClusterBootstrap, cluster_ids

Scores = dict[str, Float[np.ndarray, " draws"]]
"""Metric name -> its value under each weight row (row 0: the point estimate)."""


@dataclass(frozen=True)
class OfficialInput:
    frame: pl.DataFrame
    """One condition: one row per item, prediction columns (parsed, score, score_official, ...) plus the item's
    ``answer``, ``answers``, ``options`` and ``meta`` (its metadata, decoded)."""
    weights: Float[np.ndarray, "draws items"]

    def column(self, name: str) -> list[Any]:
        return self.frame[name].to_list()

    def metas(self) -> list[dict[str, Any]]:
        return [m or {} for m in self.frame["meta"].to_list()]

    def meta(self, key: str) -> list[Any]:
        return [m.get(key) for m in self.metas()]

    def array(self, name: str) -> np.ndarray:
        return self.frame[name].cast(pl.Float64).fill_null(0.0).to_numpy()


def weighted_mean(weights: np.ndarray, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``values`` (over rows where ``mask`` holds) under every weight row."""
    m = np.ones(values.shape[0]) if mask is None else mask.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ (values * m)) / (weights @ m)


def _groups(keys: Sequence[Any]) -> tuple[np.ndarray, int]:
    ids = cluster_ids([json.dumps(k, default=str) for k in keys])
    return ids, int(ids.max()) + 1 if ids.size else 0


def all_correct_rate(weights: np.ndarray, keys: Sequence[Any], correct: np.ndarray) -> np.ndarray:
    """Share of groups (rows sharing a key) whose every row is correct. A group's weight is its first row's;
    groups must lie inside one bootstrap cluster, so all its rows carry the same weight."""
    ids, n = _groups(keys)
    group_ok = np.ones(n, dtype=bool)
    np.logical_and.at(group_ok, ids, correct.astype(bool))
    first = np.unique(ids, return_index=True)[1]
    return weighted_mean(weights[:, first], group_ok.astype(float))


def mean_of_group_means(weights: np.ndarray, keys: Sequence[Any], values: np.ndarray) -> np.ndarray:
    """The unweighted average over groups of each group's mean (HR-Bench's average over cycles)."""
    ids, n = _groups(keys)
    onehot = np.zeros((len(ids), n))
    onehot[np.arange(len(ids)), ids] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ (onehot * values[:, None])) / (weights @ onehot)  # (draws, groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw that misses every group: NaN, as it should
        return np.nanmean(means, axis=1)


def accuracy(data: OfficialInput) -> Scores:
    """Plain accuracy (letter match for multiple choice), the official score of benchmarks with no other."""
    return {"accuracy": weighted_mean(data.weights, data.array("score"))}


def accuracy_by(data: OfficialInput, key: str, score: str = "score") -> Scores:
    """Accuracy overall and per value of a metadata key (``accuracy_<value>``)."""
    correct = data.array(score)
    values = np.array([str(v) for v in data.meta(key)])
    scores = {"accuracy": weighted_mean(data.weights, correct)}
    for value in sorted(set(values.tolist())):
        scores[f"accuracy_{value}"] = weighted_mean(data.weights, correct, values == value)
    return scores


def binary_scores(
    weights: np.ndarray, predicted: Sequence[str | None] | np.ndarray, gold: Sequence[str] | np.ndarray
) -> Scores:
    """Accuracy, precision, recall, F1 and yes-ratio of yes/no answers (POPE's definitions, "yes" the positive
    class). An answer that is neither yes nor no (unparsed, abstained) is right for neither class: it lowers
    accuracy, counts as a missed "yes" in recall, and is not a "yes" in precision or the yes-ratio. (POPE's own
    script reads anything without "no"/"not" as "yes"; that would turn a refusal into a positive.)"""
    p = np.array([a == "yes" for a in predicted], dtype=float)
    n = np.array([a == "no" for a in predicted], dtype=float)
    g = np.array([a == "yes" for a in gold], dtype=float)
    tp = weights @ (p * g)
    fp = weights @ (p * (1 - g))
    fn = weights @ ((1 - p) * g)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        f1 = 2 * precision * recall / (precision + recall)
    return {
        "accuracy": weighted_mean(weights, p * g + n * (1 - g)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": weighted_mean(weights, p),
    }


def condition_inputs(predictions: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Predictions joined with each item's gold and decoded metadata (``meta``)."""
    meta = pl.Series("meta", [json.loads(m) for m in items["metadata"].to_list()], dtype=pl.Object)
    columns = ["item_id", "answer", "answers", "options", *(["image_keys", "metadata"] if "image_keys" in items.columns
                                                           else [])]  # fmt: skip
    extra = items.select(columns).with_columns(meta)
    return predictions.join(extra, on="item_id", how="left", maintain_order="left")


def official_rows(
    predictions: pl.DataFrame,
    items: pl.DataFrame,
    official: Callable[[OfficialInput], Scores] | None,
    cluster: Callable[[Mapping[str, Any]], str],
    resamples: int,
    confidence: float,
    seed: int,
) -> list[dict[str, Any]]:
    """A benchmark's official scores (its ``official`` hook) per condition as ``official_<metric>`` rows, with
    percentile intervals from one shared set of resamples of its ``cluster`` units (so intervals of different
    conditions are coherent)."""
    if official is None:
        return []
    item_rows = items.to_dicts()
    clusters = cluster_ids([cluster(item) for item in item_rows])
    boot = ClusterBootstrap(clusters, resamples, confidence, seed)
    position = {item["item_id"]: i for i, item in enumerate(item_rows)}
    joined = condition_inputs(predictions, items)
    rows = []
    for (family, level, param), group in joined.group_by(["family", "level", "param"], maintain_order=True):
        index = np.array([position[i] for i in group["item_id"].to_list()])
        weights = np.vstack([np.ones(len(index)), boot.weights[:, index]])
        parsed = int(group["outcome"].is_in(["correct", "wrong"]).sum()) if "outcome" in group.columns else len(index)
        for metric, draws in official(OfficialInput(group, weights)).items():
            value = float(draws[0])
            low, high = boot.percentiles(draws[1:])
            undefined = (
                f"undefined on these answers: a zero denominator ({parsed} of {len(index)} answers parsed)"
                if not np.isfinite(value)
                else None
            )
            rows.append(
                {
                    "family": family,
                    "level": level,
                    "param": param,
                    "metric": f"official_{metric}",
                    "value": value if np.isfinite(value) else None,
                    "ci_low": None if undefined else low,
                    "ci_high": None if undefined else high,
                    "n": len(index),
                    "note": undefined,
                }
            )
    return rows
