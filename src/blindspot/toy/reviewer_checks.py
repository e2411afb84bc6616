"""Calibration of what a reviewer asks for against the toy world: the paired comparisons (the aggregate's
``tables/comparisons.parquet``) and the benchmark that needs the image (``blindspot export``'s selection).

**Comparisons.** Planted: on the clean view the reader and the overruled model answer every item alike but the
conflict items, where the reader answers the colour (gold) and the overruled model never does; so the reader's
accuracy exceeds the overruled model's by exactly the planted conflict share, and the test must find it. A layer
donor and the reader both follow the image on every kind: on the clean view they must not differ. A layer donor's
hybrids differ from their base exactly where the swapped weights include the planted layer.

**The benchmark that needs the image.** Every kind but ``prior`` (the text fixes the answer) needs the image: the
toy models answer those at chance and unsure without it (conflict items included: the hint-follower answers the
hint, which is wrong). The selection's precision and recall against the planted kinds must reach 0.98.
"""

from __future__ import annotations

import polars as pl

from blindspot.stages.aggregate.needs_image import judge, read_predictions
from blindspot.stages.table import output_path
from blindspot.store.tables import read_frame
from blindspot.toy.context import Context, Row, planted_layers

EXPORT_TARGET = 0.98

CLEAN = ("blur", 0)


def _clean_row(table: pl.DataFrame, first: str, second: str) -> tuple[dict | None, int]:
    """The clean-view row of the pair in either order, and the sign that makes it ``first`` minus ``second``."""
    for a, b, sign in ((first, second, 1), (second, first, -1)):
        hit = table.filter(
            (pl.col("model_a") == a) & (pl.col("model_b") == b) & (pl.col("family") == CLEAN[0])
            & (pl.col("level") == CLEAN[1])
        )  # fmt: skip
        if hit.height:
            return hit.row(0, named=True), sign
    return None, 1


def compare_checks(ctx: Context) -> list[Row]:
    path = ctx.results / "tables" / "comparisons.parquet"
    toy = ctx.config.toy
    assert toy is not None
    readers = [m for m, role in toy.lens_models.items() if role == "reader"]
    overruled = [m for m, role in toy.lens_models.items() if role == "overruled"]
    donors = [m for m, role in toy.models.items() if role == "donor"]
    if not path.is_file() or not readers:
        return []
    table = read_frame(path).filter(pl.col("benchmark") == ctx.bench)
    planted = toy.shares["conflict"]
    rows = []
    for other in overruled:
        row, sign = _clean_row(table, readers[0], other)
        if row is None:
            continue
        low, high = sorted((sign * row["difference_ci_low"], sign * row["difference_ci_high"]))
        name = f"{readers[0]} - {other}"
        rows += [
            Row(name, "clean accuracy difference", f"{planted:.3f}", sign * row["difference"], "in interval",
                low <= planted <= high),
            Row(name, "clean difference found (adjusted p)", "< alpha", row["p_adjusted"],
                f"< {ctx.config.compare.alpha}", bool(row["differs"])),
        ]  # fmt: skip
    for donor in donors:
        row, _ = _clean_row(table, readers[0], donor)
        if row is not None:
            rows.append(Row(f"{readers[0]} - {donor}", "clean: no difference (adjusted p)", ">= alpha",
                            row["p_adjusted"], f">= {ctx.config.compare.alpha}", not row["differs"]))  # fmt: skip
    return rows


def export_checks(ctx: Context) -> list[Row]:
    """The items no model answers right without an informative image, against the kinds that need the image."""
    models = sorted(ctx.config.models)
    paths = [output_path(ctx.results, "predict", "predictions", model=m, bench=ctx.bench) for m in models]
    if not all(p.is_file() for p in paths):
        return []
    decay = ctx.config.decay
    judged = judge(read_predictions(paths), decay.coarse_families, decay.margin_threshold)
    selected = judged.items.join(ctx.items.select("item_id", "kind"), on="item_id")
    chosen, needed = ~selected["solved_blind"], selected["kind"] != "prior"
    hits = int((chosen & needed).sum())
    precision = hits / max(int(chosen.sum()), 1)
    recall = hits / max(int(needed.sum()), 1)
    name = f"export ({len(models)} models)"
    return [
        Row(name, "needs-image precision (planted kinds)", f">= {EXPORT_TARGET}", precision, f">= {EXPORT_TARGET}",
            precision >= EXPORT_TARGET),
        Row(name, "needs-image recall (planted kinds)", f">= {EXPORT_TARGET}", recall, f">= {EXPORT_TARGET}",
            recall >= EXPORT_TARGET),
    ]  # fmt: skip


def hybrid_checks(ctx: Context) -> list[Row]:
    """A layer donor's weight-swap hybrids against their base, on the clean view: the ones that differ (adjusted p
    below alpha) are exactly the specs whose swapped layers include the planted layer (or every parameter)."""
    comparisons = ctx.results / "tables" / "comparisons.parquet"
    swaps = ctx.results / "tables" / "swaps.parquet"
    if not comparisons.is_file() or not swaps.is_file():
        return []
    table = read_frame(comparisons).filter((pl.col("kind") == "swap") & (pl.col("benchmark") == ctx.bench))
    specs = read_frame(swaps).select("pair", "spec", "layers", "units").unique(["pair", "spec"])
    rows = []
    for pair, spec in ctx.config.swap.pairs.items():
        if spec.donor is None:  # a LoRA donor: not a planted toy layer
            continue
        planted = planted_layers(ctx.config.models[spec.donor].path)
        clean = table.filter(
            (pl.col("model_b") == f"{pair}:base") & (pl.col("family") == CLEAN[0]) & (pl.col("level") == CLEAN[1])
        )
        if planted is None or clean.is_empty():
            continue
        found = {a.split(":", 1)[1] for a in clean.filter(pl.col("differs"))["model_a"]}
        expected = {
            r["spec"] for r in specs.filter(pl.col("pair") == pair).iter_rows(named=True)
            if r["spec"] != "base" and (set(planted) & set(r["layers"] or []) or "all" in (r["units"] or []))
        }  # fmt: skip
        agree = len(found & expected) / max(len(found | expected), 1)
        rows.append(Row(pair, "hybrids that differ: planted-layer specs", f"{sorted(expected)}", agree,
                        "same set", found == expected))  # fmt: skip
        if found != expected:
            ctx.notes.append(f"{pair}: hybrids that differ from the base {sorted(found)}, expected {sorted(expected)}")
    return rows
