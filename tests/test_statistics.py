"""The intervals, checked by simulation: they cover the truth about as often as they claim, respect clustering
(items that share a source image move together), and shrink as 1/sqrt(n)."""

from __future__ import annotations

import numpy as np
import pytest

from blindspot.statistics import ClusterBootstrap, cluster_ids, wilson

REPS = 300


def coverage(truth: float, n_clusters: int, per_cluster: int, shared: bool, seed: int = 0) -> tuple[float, float]:
    """(share of REPS intervals that contain ``truth``, mean width) for a proportion over ``n_clusters`` clusters
    of ``per_cluster`` items; ``shared``: the items of a cluster have one outcome (POPE's questions of one image
    answered alike), else independent outcomes."""
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(n_clusters), per_cluster)
    hits, widths = 0, []
    for rep in range(REPS):
        if shared:
            values = np.repeat(rng.random(n_clusters) < truth, per_cluster).astype(float)
        else:
            values = (rng.random(n_clusters * per_cluster) < truth).astype(float)
        boot = ClusterBootstrap(clusters, 400, 0.95, seed=rep)
        estimate = boot.mean(values, np.ones(values.size, dtype=bool))
        assert estimate.low is not None and estimate.high is not None
        hits += estimate.low <= truth <= estimate.high
        widths.append(estimate.high - estimate.low)
    return hits / REPS, float(np.mean(widths))


@pytest.mark.parametrize(("truth", "n_clusters"), [(0.3, 60), (0.05, 100), (0.5, 30)])
def test_a_95_percent_interval_covers_the_truth_about_95_percent_of_the_time(truth: float, n_clusters: int) -> None:
    covered, _ = coverage(truth, n_clusters, 1, shared=False)
    assert 0.90 <= covered <= 0.995, covered  # 300 draws: a true 95% lands in [0.92, 0.975] nearly always


@pytest.mark.slow
def test_clustered_items_widen_the_interval_to_keep_its_coverage() -> None:
    """Five questions per image answered alike are one observation, not five: the cluster bootstrap keeps the
    coverage at 95% where an item bootstrap would fall to about 70% (its width shrinks by sqrt(5))."""
    covered, width = coverage(0.3, 40, 5, shared=True)
    assert covered >= 0.90, covered
    _, width_items = coverage(0.3, 200, 1, shared=False)
    assert width > 1.8 * width_items  # 40 independent images, not 200 independent items
    items_only = ClusterBootstrap(np.arange(200), 400, 0.95, seed=0)  # the same data with clustering ignored
    values = np.repeat(np.random.default_rng(1).random(40) < 0.3, 5).astype(float)
    ignored = items_only.mean(values, np.ones(200, dtype=bool))
    respected = ClusterBootstrap(np.repeat(np.arange(40), 5), 400, 0.95, seed=0).mean(values, np.ones(200, dtype=bool))
    assert (respected.high - respected.low) > 1.8 * (ignored.high - ignored.low)


@pytest.mark.slow
def test_the_width_shrinks_as_one_over_root_n() -> None:
    _, narrow = coverage(0.3, 400, 1, shared=False)
    _, wide = coverage(0.3, 100, 1, shared=False)
    assert wide / narrow == pytest.approx(2.0, rel=0.15)


def test_a_rate_of_zero_still_gets_an_honest_interval() -> None:
    """0 of 100 images: the bootstrap alone gives [0, 0]; the Wilson floor gives [0, 0.037]."""
    estimate = ClusterBootstrap(np.arange(100), 200, 0.95, seed=0).mean(np.zeros(100), np.ones(100, dtype=bool))
    assert estimate.value == 0.0 and estimate.low == 0.0
    assert estimate.high == pytest.approx(wilson(0, 100, 0.95)[1]) and estimate.high == pytest.approx(0.037, abs=0.001)


def test_a_difference_is_signed_and_paired_by_item() -> None:
    """MG-style differences: a minus b, its interval around the observed difference, paired within items."""
    rng = np.random.default_rng(2)
    a = (rng.random(300) < 0.7).astype(float)
    b = np.where(rng.random(300) < 0.9, a, 1 - a) * (rng.random(300) < 0.8)
    boot = ClusterBootstrap(cluster_ids([f"img{i // 3}" for i in range(300)]), 500, 0.95, seed=0)
    forward, backward = boot.difference(a, b, np.ones(300, bool)), boot.difference(b, a, np.ones(300, bool))
    assert forward.value == pytest.approx(a.mean() - b.mean()) and backward.value == pytest.approx(-forward.value)
    assert forward.low < forward.value < forward.high and forward.low > 0  # a really is higher
    assert backward.high == pytest.approx(-forward.low) and backward.low == pytest.approx(-forward.high)


def test_a_difference_over_clustered_items_keeps_its_coverage() -> None:
    """MG over questions that share an image: with and without the image, each image's questions go together. A
    bootstrap over items (not images) would cover the true difference far less than 95% of the time."""
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(40), 5)
    hits = 0
    for rep in range(REPS):
        with_image = np.repeat(rng.random(40) < 0.7, 5).astype(float)
        without = np.repeat(rng.random(40) < 0.5, 5).astype(float)
        estimate = ClusterBootstrap(clusters, 400, 0.95, seed=rep).difference(with_image, without, np.ones(200, bool))
        hits += estimate.low <= 0.2 <= estimate.high
    assert hits / REPS >= 0.88, hits / REPS


def test_the_interval_is_the_percentile_interval_at_the_confidence_asked() -> None:
    """A mean that is not a proportion: its interval is exactly the (alpha/2, 1 - alpha/2) quantiles of the
    resampled means, at 95% and at 80% (a wrong percentile level moves both ends)."""
    rng = np.random.default_rng(4)
    values, clusters = rng.normal(size=120), np.repeat(np.arange(40), 3)
    mask = np.ones(120, dtype=bool)
    for confidence in (0.95, 0.8):
        boot = ClusterBootstrap(clusters, 500, confidence, seed=0)
        resampled = (boot.weights @ values) / boot.weights.sum(axis=1)
        tail = (1 - confidence) / 2
        estimate = boot.mean(values, mask, proportion=False)
        assert estimate.low == pytest.approx(np.quantile(resampled, tail))
        assert estimate.high == pytest.approx(np.quantile(resampled, 1 - tail))


def test_the_small_sample_floor_counts_source_images_not_items() -> None:
    """0 of 100 questions about 20 images: 20 independent observations, so the Wilson floor is wilson(0, 20)
    ([0, 0.16]), not wilson(0, 100) ([0, 0.037])."""
    clusters = np.repeat(np.arange(20), 5)
    estimate = ClusterBootstrap(clusters, 200, 0.95, seed=0).mean(np.zeros(100), np.ones(100, dtype=bool))
    assert estimate.high == pytest.approx(wilson(0, 20, 0.95)[1]) and estimate.high > 0.15
