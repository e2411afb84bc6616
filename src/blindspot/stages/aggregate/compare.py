"""Paired comparisons: two models on the same items, per benchmark and condition (docs/method.md §8).

For a pair (a, b), each condition's difference in accuracy (the mean official score) over the items both answered,
with a paired cluster-bootstrap interval: an item's two answers are resampled together, and items sharing a source
image move together, so neither the pairing nor the clustering is thrown away. McNemar's exact test on the
discordant pairs (items exactly one of the two gets right) gives a p-value per condition; the p-values of one pair
are adjusted over its whole benchmark x condition grid (Holm by default, Benjamini-Hochberg as ``compare.adjust``).
Every row carries its minimum detectable effect, so a null result says which differences it rules out. A weight
swap's hybrids are compared with their base the same way (``<pair>:<spec>`` against ``<pair>:base``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from blindspot.contracts.items import image_group
from blindspot.statistics import (
    ClusterBootstrap,
    adjust_p,
    cluster_ids,
    mcnemar_exact,
    minimum_detectable,
)

CONDITION = ["family", "level", "param"]


def _answers(predictions: pl.DataFrame, model: str, bench: str) -> pl.DataFrame:
    return predictions.filter((pl.col("model") == model) & (pl.col("benchmark") == bench)).select(
        "item_id", *CONDITION, "score", (pl.col("outcome") == "correct").alias("correct")
    )


def compare_pair(
    a: pl.DataFrame, b: pl.DataFrame, groups: dict[str, str], settings: Any, seed: int
) -> list[dict[str, Any]]:
    """Every condition of one pair on one benchmark (``a``, ``b``: :func:`_answers` frames; ``groups``: item id ->
    source-image group). p-values unadjusted."""
    joined = a.join(b, on=["item_id", *CONDITION], suffix="_b")
    if joined.is_empty():
        return []
    ids = sorted(joined["item_id"].unique().to_list())
    index = {item: i for i, item in enumerate(ids)}
    boot = ClusterBootstrap(cluster_ids([groups.get(i, i) for i in ids]), settings.bootstrap, settings.confidence,
                            seed)  # fmt: skip
    rows = []
    for (family, level, param), part in joined.group_by(CONDITION, maintain_order=True):
        mask = np.zeros(len(ids), dtype=bool)
        diff = np.zeros(len(ids))
        at = np.array([index[i] for i in part["item_id"]])
        mask[at] = True
        score_a, score_b = part["score"].to_numpy().astype(float), part["score_b"].to_numpy().astype(float)
        diff[at] = score_a - score_b
        estimate = boot.mean(diff, mask, proportion=False)
        se = boot.standard_error(diff, mask)
        right_a, right_b = part["correct"].to_numpy(), part["correct_b"].to_numpy()
        only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
        rows.append(
            {"family": family, "level": level, "param": param, "n": part.height,
             "accuracy_a": float(score_a.mean()), "accuracy_b": float(score_b.mean()),
             "difference": estimate.value, "difference_ci_low": estimate.low, "difference_ci_high": estimate.high,
             "standard_error": se, "mde": minimum_detectable(se, settings.alpha, settings.power),
             "only_a": only_a, "only_b": only_b, "p_mcnemar": mcnemar_exact(only_a, only_b)}
        )  # fmt: skip
    return rows


def comparisons(
    predictions: pl.DataFrame,
    items: pl.DataFrame,
    pairs: list[tuple[str, str]],
    settings: Any,
    seed: int,
    kind: str = "models",
) -> list[dict[str, Any]]:
    """Every pair, benchmark and condition; p adjusted per pair over its benchmark x condition grid."""
    groups = {r["item_id"]: image_group(r["image_keys"]) for r in items.select("item_id", "image_keys").iter_rows(
        named=True)} if items.height else {}  # fmt: skip
    benches = sorted(predictions["benchmark"].unique().to_list()) if predictions.height else []
    out = []
    for model_a, model_b in pairs:
        rows = []
        for bench in benches:
            found = compare_pair(
                _answers(predictions, model_a, bench), _answers(predictions, model_b, bench), groups, settings, seed
            )
            rows += [{"kind": kind, "model_a": model_a, "model_b": model_b, "benchmark": bench} | r for r in found]
        adjusted = adjust_p([r["p_mcnemar"] for r in rows], settings.adjust)
        for row, p in zip(rows, adjusted, strict=True):
            row |= {"p_adjusted": p, "adjust": settings.adjust, "differs": p < settings.alpha, "note": None}
            if row["only_a"] + row["only_b"] == 0:
                row["note"] = "no discordant pairs: the two models answer alike on every item"
        out += rows
    return out


def hybrid_answers(swap_answers: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """The swap stage's answers as predictions of models named ``<pair>:<spec>``, and every (hybrid, its base)
    pair: a weight swap compared with the model it was made from, on the same items and conditions."""
    if swap_answers.is_empty():
        return swap_answers, []
    frame = swap_answers.with_columns((pl.col("pair") + ":" + pl.col("spec")).alias("model"))
    pairs = [
        (f"{pair}:{spec}", f"{pair}:base")
        for pair, spec in swap_answers.select("pair", "spec").unique().sort("pair", "spec").iter_rows()
        if spec != "base"
    ]
    return frame, pairs
