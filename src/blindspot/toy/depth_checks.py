"""Calibration of the lens, attention and knockout stages against the toy models that plant where the image is read.

The reader (``toy.lens_models: {name: reader}``) reads the image only through the last prompt token's attention in
decoder layer ``READ_LAYER``; its answer to an item whose cue is the image (a colour) cannot lead before residual
point ``READ_LAYER + 1``. The overruled model (``overruled``) is that reader with layer ``OVERRIDE_LAYER`` trained to
follow the hint: on conflict items the colour leads at ``READ_LAYER + 1`` and the hint takes over at
``OVERRIDE_LAYER + 1``. What calibrate checks, per model:

- **emergence** (lens stage, tuned lens, clean): the median point from which a colour item's final answer stays
  on top is ``READ_LAYER + 1``;
- **override** (tuned lens; overruled, conflict items it answers with the hint): the colour led at some point in
  most of them and the hint overtook it, at the median point ``OVERRIDE_LAYER + 1``; the reader's conflict items
  are seldom overtaken;
- **attention** (extract's arrays): the last prompt token's image mass peaks in ``READ_LAYER`` and is near zero
  elsewhere; it falls where blur erased the cue (stripe items) and holds where the cue survives (colour items);
- **knockout** (reader): blocking the last token's access to the image in ``READ_LAYER`` alone flips most colour
  answers; a window elsewhere flips almost none.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from blindspot.stages.table import output_path
from blindspot.store.hidden import HiddenStore
from blindspot.store.tables import read_frame
from blindspot.toy.checkpoints import OVERRIDE_LAYER, READ_LAYER
from blindspot.toy.context import Context, Row, share
from blindspot.toy.items import STRIPE_KINDS

CLEAN = "blur/0"
FOLLOWED = 0.8
"""Most: the share of items that must show a planted behaviour (answers at chance on a K-option item coincide)."""
SELDOM = 0.1
"""Seldom: the share above which an unplanted behaviour counts as present."""
ELSEWHERE_MASS = 0.05
"""The largest mean attention mass on the image allowed outside the reading layer."""
FALL = 0.2
"""How far the image mass in the reading layer must fall where blur erased the cue."""


def _frame(ctx: Context, stage: str, output: str, model: str) -> pl.DataFrame | None:
    path = output_path(ctx.results, stage, output, model=model, bench=ctx.bench)
    return read_frame(path).join(ctx.items.select("item_id", "kind"), on="item_id") if path.is_file() else None


def _row(model: str, quantity: str, planted: str, measured: float, ok: bool, tolerance: str = "") -> Row:
    return Row(model, quantity, planted, measured, tolerance or planted, bool(ok))


def lens_emergence(ctx: Context, model: str, role: str) -> list[Row]:
    """Colour items, clean view, tuned lens: the median emergence point is ``READ_LAYER + 1``."""
    rows = _frame(ctx, "lens", "per_item", model)
    if rows is None:
        ctx.notes.append(f"{model}: no lens output to check")
        return []
    colour = rows.filter((pl.col("kind") == "coarse") & (pl.col("level") == CLEAN) & (pl.col("lens") == "tuned"))
    points = []
    for _, item in colour.sort("layer").group_by("item_id", maintain_order=True):
        tops, layers = item["top"].to_list(), item["layer"].to_list()  # the points as the stage labels them
        stays = [t == tops[-1] for t in tops]
        points.append(layers[len(stays) - stays[::-1].index(False) if not all(stays) else 0])
    median = float(np.median(points)) if points else float("nan")
    curve = colour.group_by("layer").agg((pl.col("top") == pl.col("gold")).mean().alias("gold")).sort("layer")
    ctx.notes.append(f"{model}: colour items, tuned lens, gold on top by point {curve['gold'].round(3).to_list()}")
    return [_row(model, "answer emerges (median point)", f"{READ_LAYER + 1}", median, median == READ_LAYER + 1)]


def lens_override(ctx: Context, model: str, role: str) -> list[Row]:
    """Conflict items, clean view, tuned lens: the overruled model's prior overtakes the colour at
    ``OVERRIDE_LAYER + 1`` in most of them; the reader's seldom. (The logit lens reads gold at the reading point
    on only part of them, the instability the tuned lens corrects: a note gives its share.)"""
    rows = _frame(ctx, "lens", "per_item", model)
    if rows is None:
        return []
    on_point = rows.filter(
        (pl.col("kind") == "conflict") & (pl.col("level") == CLEAN) & (pl.col("layer") == READ_LAYER + 1)
    )
    shares = on_point.group_by("lens").agg((pl.col("top") == pl.col("gold")).mean().alias("gold")).sort("lens")
    ctx.notes.append(
        f"{model}: conflict items, gold on top at point {READ_LAYER + 1}: "
        + ", ".join(f"{lens} lens {share:.3f}" for lens, share in shares.rows())
    )
    conflict = rows.filter((pl.col("kind") == "conflict") & (pl.col("level") == CLEAN) & (pl.col("lens") == "tuned"))
    overtaken, where, on_prior = [], [], 0
    for _, item in conflict.sort("layer").group_by("item_id", maintain_order=True):
        tops, gold, prior, final = item["top"].to_list(), item["gold"][0], item["prior"][0], item["final"][0]
        layers = item["layer"].to_list()  # the points as the stage labels them
        led = [p for p, t in zip(layers[:-1], tops[:-1], strict=True) if t == gold]
        after = [p for p, t in zip(layers, tops, strict=True) if led and t == prior and p > led[-1]]
        after = after if final == prior else []
        overtaken.append(bool(after))
        on_prior += final == prior
        where += after[:1]
    if role == "reader":
        measured = float(np.mean(overtaken)) if overtaken else float("nan")
        return [_row(model, "conflict items overtaken by prior", f"<= {SELDOM}", measured, measured <= SELDOM)]
    # the overruled model answers the hint on most conflict items (its training record); on those, the colour must
    # have led first (the image was read) and the hint taken over after the overriding layer
    measured = sum(overtaken) / on_prior if on_prior else float("nan")
    point = float(np.median(where)) if where else float("nan")
    return [
        _row(model, "prior answers: gold led first", f">= {FOLLOWED}", measured, measured >= FOLLOWED),
        _row(model, "prior overtakes (median point)", f"{OVERRIDE_LAYER + 1}", point, point == OVERRIDE_LAYER + 1),
    ]


def attention_checks(ctx: Context, model: str, role: str) -> list[Row]:
    """The reader's last-token image mass per decoder layer: peak in ``READ_LAYER``, near zero elsewhere, falling
    where blur erased the stripes, holding on colour items."""
    path = output_path(ctx.results, "extract", "hidden", model=model, bench=ctx.bench)
    if not path.is_dir():
        return []
    store = HiddenStore(path)
    if not store.has_attention:
        return [_row(model, "attention read", "yes", 0.0, False)]
    kinds = ctx.items.join(pl.DataFrame({"item_id": store.item_ids}), on="item_id", how="right")["kind"].to_numpy()
    mass = store.attention()["attention_image"].mean(-1)  # (items, levels, layers)
    clean, severe = store.levels.index(CLEAN), len(store.levels) - 1
    by_layer = mass[:, clean].mean(0)
    others = np.delete(by_layer, READ_LAYER)
    stripes, colour = np.isin(kinds, list(STRIPE_KINDS)), kinds == "coarse"
    fall = float(mass[stripes, clean, READ_LAYER].mean() - mass[stripes, severe, READ_LAYER].mean())
    held = float(mass[colour, severe, READ_LAYER].mean() - mass[colour, clean, READ_LAYER].mean())
    ctx.notes.append(f"{model}: image mass by decoder layer (clean) {[round(float(v), 3) for v in by_layer]}")
    return [
        _row(model, "image attention peaks (layer)", f"{READ_LAYER}", float(by_layer.argmax()),
             by_layer.argmax() == READ_LAYER),
        _row(model, "image attention elsewhere (max)", f"<= {ELSEWHERE_MASS}", float(others.max()),
             others.max() <= ELSEWHERE_MASS),
        _row(model, "stripes: mass falls with blur", f">= {FALL}", fall, fall >= FALL),
        _row(model, "colour: mass change with blur", f">= -{FALL / 2}", held, held >= -FALL / 2),
    ]  # fmt: skip


def knockout_checks(ctx: Context, model: str, role: str) -> list[Row]:
    """The reader, last token blocked from the image in one-layer windows: ``READ_LAYER`` flips most colour
    answers (chance coincidences aside), every other window seldom flips any."""
    rows = _frame(ctx, "knockout", "per_item", model)
    if rows is None or role != "reader":
        return []
    single = rows.filter((pl.col("position") == "last") & (pl.col("window_size") == 1) & (pl.col("condition") == CLEAN))
    if single.is_empty():
        ctx.notes.append(f"{model}: no one-layer knockout windows at {CLEAN} to check (knockout.windows: [1])")
        return []
    colour = single.filter(pl.col("kind") == "coarse")
    reading = share(colour.filter(pl.col("window_start") == READ_LAYER)["flipped"])
    elsewhere = single.filter(pl.col("window_start") != READ_LAYER)
    worst = max((share(p["flipped"]) for _, p in elsewhere.group_by("window_start")), default=float("nan"))
    return [
        _row(model, f"knockout layer {READ_LAYER}: colour flips", f">= {FOLLOWED / 2}", reading,
             reading >= FOLLOWED / 2),
        _row(model, "knockout elsewhere: flips (max)", f"<= {SELDOM / 2}", worst, worst <= SELDOM / 2),
    ]  # fmt: skip


def depth_checks(ctx: Context, model: str, role: str) -> list[Row]:
    checks = (lens_emergence, lens_override, attention_checks, knockout_checks)
    return [row for check in checks for row in check(ctx, model, role)]
