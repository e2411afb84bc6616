"""Confidence intervals shared by the stages: a cluster bootstrap over items, Wilson score intervals, and
t intervals across folds.

**Cluster bootstrap.** Items that share a source image are not independent (POPE asks several questions of each
image, HallusionBench pairs its questions by figure): resampling items one by one would understate the
uncertainty. Every resample draws *clusters* (source images) with replacement and keeps all of a drawn cluster's
items together. One shared set of resamples serves every statistic of a table, so their intervals are coherent.

**Intervals that do not collapse.** A percentile bootstrap of a proportion observed at 0 or 1 is the single point
[0, 0] or [1, 1]. For proportions the bootstrap interval is therefore widened to contain the Wilson score
interval computed on the number of independent clusters: 0 of 100 images gets [0, 0.037] at 95%, as it should.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from jaxtyping import Bool, Float, Int
from scipy.stats import t as student_t

from blindspot.errors import BlindspotError


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int

    @classmethod
    def missing(cls) -> Estimate:
        return cls(None, None, None, 0)


def wilson(successes: float, n: float, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion (never of zero width for n > 0)."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values: Float[np.ndarray, " k"], confidence: float) -> tuple[float | None, float | None]:
    """Mean +- t * standard error over ``k`` independent estimates (e.g. cross-validation folds)."""
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None, None
    half = float(student_t.ppf(0.5 + confidence / 2, values.size - 1)) * values.std(ddof=1) / math.sqrt(values.size)
    return float(values.mean() - half), float(values.mean() + half)


class ClusterBootstrap:
    """Percentile intervals from one shared set of cluster resamples (seeded)."""

    def __init__(self, clusters: Int[np.ndarray, " items"], resamples: int, confidence: float, seed: int) -> None:
        self.clusters = np.asarray(clusters)
        self.n_clusters = int(self.clusters.max()) + 1 if self.clusters.size else 0
        rng = np.random.default_rng(seed)
        if self.n_clusters:
            counts = rng.multinomial(self.n_clusters, np.full(self.n_clusters, 1 / self.n_clusters), size=resamples)
            self.weights = counts[:, self.clusters].astype(float)  # (resamples, items): how often each item is drawn
        else:
            self.weights = np.zeros((resamples, 0))
        self.confidence = confidence
        self.alpha = (1 - confidence) / 2

    def percentiles(self, statistic: np.ndarray) -> tuple[float | None, float | None]:
        finite = statistic[np.isfinite(statistic)]
        if finite.size == 0:
            return None, None
        return float(np.quantile(finite, self.alpha)), float(np.quantile(finite, 1 - self.alpha))

    def mean(
        self, values: Float[np.ndarray, " items"], mask: Bool[np.ndarray, " items"], *, proportion: bool = True
    ) -> Estimate:
        """Mean of ``values`` over items where ``mask`` holds. ``proportion``: values lie in [0, 1], and the
        interval is widened to contain the Wilson interval on the number of clusters involved."""
        n = int(mask.sum())
        if n == 0:
            return Estimate.missing()
        value = float(values[mask].mean())
        v = np.where(mask, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = (self.weights @ v) / (self.weights @ mask.astype(float))
        low, high = self.percentiles(stats)
        if proportion and low is not None and high is not None:
            clusters = len(np.unique(self.clusters[mask]))
            w_low, w_high = wilson(value * clusters, clusters, self.confidence)
            low, high = min(low, w_low), max(high, w_high)
        return Estimate(value, low, high, n)

    def difference(
        self, a: Float[np.ndarray, " items"], b: Float[np.ndarray, " items"], mask: Bool[np.ndarray, " items"]
    ) -> Estimate:
        """Mean of a minus mean of b over the items where ``mask`` holds, with its interval."""
        n = int(mask.sum())
        if n == 0:
            return Estimate.missing()
        m = mask.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = (self.weights @ (np.where(mask, a - b, 0.0))) / (self.weights @ m)
        return Estimate(float((a - b)[mask].mean()), *self.percentiles(stats), n)

    def standard_error(self, values: Float[np.ndarray, " items"], mask: Bool[np.ndarray, " items"]) -> float | None:
        """The bootstrap standard error of the mean of ``values`` over the masked items (clusters resampled)."""
        if not mask.any():
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = (self.weights @ np.where(mask, values, 0.0)) / (self.weights @ mask.astype(float))
        finite = stats[np.isfinite(stats)]
        return float(finite.std(ddof=1)) if finite.size > 1 else None


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """McNemar's exact test: the two-sided binomial p-value of the discordant pairs (``only_a``: items only the
    first model gets right; ``only_b``: only the second), 1.0 where there are none."""
    from scipy.stats import binomtest

    n = only_a + only_b
    return 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5).pvalue)


def adjust_p(p_values: list[float], method: str) -> list[float]:
    """Adjusted p-values over one family of tests: ``holm`` (Holm's step-down, the family-wise error rate) or
    ``bh`` (Benjamini-Hochberg, the false discovery rate; scipy's)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    if method == "bh":
        return [float(v) for v in false_discovery_control(p, method="bh")]
    if method != "holm":
        raise ValueError(f"unknown p-value adjustment '{method}' (holm or bh)")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(v) for v in adjusted]


def minimum_detectable(standard_error: float | None, alpha: float, power: float) -> float | None:
    """The smallest true difference a two-sided test at ``alpha`` detects with probability ``power``, for an
    estimate with this standard error (normal approximation): (z_{1-alpha/2} + z_power) x SE."""
    if standard_error is None:
        return None
    z = NormalDist()
    return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * standard_error


def cluster_ids(labels: list[str]) -> Int[np.ndarray, " items"]:
    """Dense integer ids (0..k-1) for cluster labels, in first-seen order."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(label, len(index)) for label in labels], dtype=int)


def grouped_folds(groups: np.ndarray, k: int, seed: int, key: str = "probe.folds") -> np.ndarray:
    """Fold index per sample; every sample of a group lands in the same fold (seeded). ``key``: the config key
    of ``k``, named in the error where there are fewer groups than folds."""
    unique = np.unique(groups)
    if len(unique) < k:
        raise BlindspotError(f"{k} folds need at least {k} source images, got {len(unique)}", key=key)
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {g: i % k for i, g in zip(range(len(unique)), unique[order], strict=True)}
    return np.array([fold_of[g] for g in groups])
