"""``blindspot calibrate``: planted quantities of the toy world beside what the pipeline measured.

Each check is a function of the finished results returning rows (model, quantity, planted, measured, tolerance,
ok); the command prints them and exits non-zero when any is out of tolerance. Per model (``CHECKS``): classes, levels,
C, MG, probes, patching; per swap pair (``swap_checks``): where the planted layer donor's change lives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
import polars as pl

from blindspot.config import BlindspotConfig
from blindspot.contracts.items import image_group
from blindspot.stages.aggregate.sentences import swap_findings
from blindspot.stages.table import output_path
from blindspot.store.tables import read_frame
from blindspot.toy.context import Context, Row, planted_layers, share
from blindspot.toy.depth_checks import depth_checks
from blindspot.toy.items import STRIPE_KINDS
from blindspot.toy.reviewer_checks import compare_checks, export_checks, hybrid_checks
from blindspot.toy.scenes import ERASING_PERIODS

EXPECTED_CONFLICT_CLASS = {"base": "language_prior", "donor": "coarse_visual"}
KIND_CLASS = {
    **{kind: "fine_visual" for kind in STRIPE_KINDS},
    "coarse": "coarse_visual",
    "prior": "language_prior",
}
"""The class each planted kind must get (conflict items: by the model's role, ``EXPECTED_CONFLICT_CLASS``)."""
PLANTED_VISION = ("fine_visual", "coarse_visual")
"""The planted classes whose answer needs the image (written here, not taken from the decay stage it checks)."""
CLASS_KINDS = {cls: [k for k, c in KIND_CLASS.items() if c == cls] for cls in dict.fromkeys(KIND_CLASS.values())}


def planted_class(kind: str, role: str) -> str:
    return EXPECTED_CONFLICT_CLASS[role] if kind == "conflict" else KIND_CLASS[kind]


def cue_visible(kind: str, erased_from: int | None, kernel: int) -> bool | None:
    """Whether the item's answer cue survives a blur of this kernel (OpenCV's default sigma, float precision):
    the stripes' planted erasure (``toy.scenes``), None where the kernel lies between the last one planted to keep
    them and the first planted to erase them. Colour cues, and text-fixed answers, survive every blur."""
    if kind not in STRIPE_KINDS:
        return True
    if erased_from is None:
        raise ValueError(f"a '{kind}' item has no erased_from in its metadata; regenerate the toy benchmark")
    return ERASING_PERIODS[erased_from].visible(kernel)


def unplanted_blur(config: BlindspotConfig) -> str | None:
    """Why the toy world plants nothing about this blur ladder, or None when it does: erasure is planted for
    OpenCV's default sigma (absolute mode) computed in float precision."""
    blur = config.render.blur
    if blur.sigma_mode != "absolute":
        return "render.blur.sigma_mode is not absolute"
    if blur.precision != "float":
        return "render.blur.precision uint8 leaks fine patterns"
    return None


def class_shares(ctx: Context, model: str, role: str) -> list[Row]:
    """Among non-conflict items, the share classed fine-/coarse-visual and language-prior vs the planted kinds."""
    toy = ctx.config.toy
    assert toy is not None
    items = ctx.decay_items(model).filter(pl.col("kind") != "conflict")
    rows = []
    for cls, kinds in CLASS_KINDS.items():
        planted = share(items["kind"].is_in(kinds))
        measured = share(items["class"] == cls)
        ok = abs(measured - planted) <= toy.share_tolerance
        rows.append(Row(model, f"share {cls}", f"{planted:.3f}", measured, f"±{toy.share_tolerance:.2f}", ok))
    return rows


def vision_indispensable(ctx: Context, model: str, role: str) -> list[Row]:
    """The decay stage's vision-indispensable share (fine or coarse visual, conflict items by the model's role)
    against the share of items whose planted kind needs the image."""
    toy = ctx.config.toy
    assert toy is not None
    kinds = ctx.decay_items(model)["kind"].to_list()
    planted = float(np.mean([planted_class(kind, role) in PLANTED_VISION for kind in kinds]))
    measured = ctx.metric(model, "share_vision_indispensable")
    ok = abs(measured - planted) <= toy.share_tolerance
    return [Row(model, "share vision-indispensable", f"{planted:.3f}", measured, f"±{toy.share_tolerance:.2f}", ok)]


def conflict_class(ctx: Context, model: str, role: str) -> list[Row]:
    """Conflict items: a base that follows the hint classes them language-prior; a donor that looks, coarse-visual."""
    toy = ctx.config.toy
    assert toy is not None
    items = ctx.decay_items(model).filter(pl.col("kind") == "conflict")
    expected = EXPECTED_CONFLICT_CLASS[role]
    measured = share(items["class"] == expected) if items.height else float("nan")
    return [
        Row(
            model,
            f"conflict classed {expected}",
            "1.000",
            measured,
            f">= {toy.conflict_threshold:.2f}",
            measured >= toy.conflict_threshold,
        )
    ]


def item_classes(ctx: Context, model: str, role: str) -> list[Row]:
    """Item by item: the measured class against the class the item's planted kind must get."""
    toy = ctx.config.toy
    assert toy is not None
    items = ctx.decay_items(model)
    expected = [planted_class(kind, role) for kind in items["kind"]]
    agree = share(items["class"] == pl.Series(expected))
    threshold = toy.item_agreement
    return [Row(model, "items classed as planted", "1.000", agree, f">= {threshold:.2f}", agree >= threshold)]


def planted_by_level(
    kinds: list[str], erased: list[int | None], role: str, kernel: int, sizes: list[int] | None = None
) -> dict[str, tuple[float, float]] | None:
    """At one blur kernel, the planted mean accuracy, identical-answer rate and evidence-based survival over the
    items, each with the sampling sd of its chance-level part (None when some item's cue is not planted there).
    An item whose stripes the kernel erases answers at chance: accuracy 1/2, and its answer equals the clean one
    with probability 1/2 whatever the model's default, since orientations are balanced and independent of it."""
    accuracy, identical, survival, at_chance = [], [], [], 0.0
    for kind, erased_from, size in zip(kinds, erased, sizes or [1] * len(kinds), strict=True):
        visible = cue_visible(kind, erased_from, kernel)
        if visible is None:
            return None
        if not visible:
            accuracy.append(0.5)
            identical.append(0.5)
            survival.append(0.0)
            at_chance += size  # the items of a shared image flip their coin together: size squared over the group
        else:
            accuracy.append(0.0 if kind == "conflict" and role == "base" else 1.0)  # the base follows the hint
            identical.append(1.0)
            survival.append(1.0)
    n = len(kinds)
    chance_sd = math.sqrt(0.25 * at_chance) / n
    return {
        "accuracy": (float(np.mean(accuracy)), chance_sd),
        "identical_rate": (float(np.mean(identical)), chance_sd),
        "margin_survival_rate": (float(np.mean(survival)), 0.0),
    }


def by_level(ctx: Context, model: str, role: str) -> list[Row]:
    """At every blur level: accuracy, the identical-answer rate E and the evidence-based survival rate against
    what the toy world plants at that kernel. Tolerance: the share tolerance, or 3 sampling sd of the items that
    answer at chance, whichever is larger. A level where the toy plants nothing (a kernel between a period's last
    keeping and first erasing kernel, or a blur the planted erasure does not describe) is reported, not checked."""
    toy = ctx.config.toy
    assert toy is not None
    kinds, erased = ctx.items["kind"].to_list(), ctx.items["erased_from"].to_list()
    unplanted = unplanted_blur(ctx.config)
    rows = []
    for level, kernel in enumerate(ctx.config.render.blur.kernels):
        sizes = ctx.items["group_size"].to_list()
        planted = None if unplanted else planted_by_level(kinds, erased, role, kernel, sizes)
        for metric in ("accuracy", "identical_rate", "margin_survival_rate"):
            if level == 0 and metric != "accuracy":
                continue  # the clean level is the reference itself
            measured = ctx.metric(model, metric, "blur", level)
            quantity = f"blur/{level} (k={kernel}) {metric}"
            if planted is None:
                rows.append(Row(model, quantity, "not planted", measured, "-", True))
                continue
            value, sd = planted[metric]
            tol = max(toy.share_tolerance, 3 * sd)
            rows.append(Row(model, quantity, f"{value:.3f}", measured, f"±{tol:.3f}", abs(measured - value) <= tol))
    if unplanted:
        ctx.notes.append(f"{model}: blur levels not checked: {unplanted}")
    return rows


def planted_first_lost(kind: str, erased_from: int | None, kernels: list[int]) -> int | None:
    """The first ladder level whose blur erases the item's cue (-1: none does); None where not planted."""
    for level, kernel in enumerate(kernels[1:], start=1):
        visible = cue_visible(kind, erased_from, kernel)
        if visible is None:
            return None
        if not visible:
            return level
    return -1


def item_lost_levels(ctx: Context, model: str, role: str) -> list[Row]:
    """Item by item: the first blur level that loses the clean answer against the level that erases its planted
    cue (stripe items: the kernel their period is erased from; every other item: none). Catches a dropped,
    shifted or reordered level even where the shares per level would balance out."""
    toy = ctx.config.toy
    assert toy is not None
    if unplanted_blur(ctx.config):
        return []
    items = ctx.decay_items(model)
    kernels = ctx.config.render.blur.kernels
    planted = [planted_first_lost(k, e, kernels) for k, e in zip(items["kind"], items["erased_from"], strict=True)]
    measured = items["first_lost_level"].fill_null(-1).to_list()
    pairs = [(p, m) for p, m in zip(planted, measured, strict=True) if p is not None]
    agree = float(np.mean([p == m for p, m in pairs])) if pairs else float("nan")
    threshold = toy.item_agreement
    return [Row(model, "items lost at the planted level", "1.000", agree, f">= {threshold:.2f}", agree >= threshold)]


def multimodal_gain(ctx: Context, model: str, role: str) -> list[Row]:
    """MG = S_v - S_wv against the toy world's plants: with the image every item is answered as planted (a base
    answers conflict items with the hint, so wrongly); without it the training spec gives the visual kinds random
    labels (stripe and colour questions at chance), prior items their stated answer, and a base's conflict items
    the hint (wrong). A donor's conflict item without its image gets the model's default for that hint, which is
    the gold colour with probability 0 (it defaults to the hint) to 1/3: the planted MG is a range."""
    toy = ctx.config.toy
    assert toy is not None
    kinds = ctx.items["kind"].to_list()
    n = len(kinds)
    count = {kind: kinds.count(kind) for kind in ("coarse", "prior", "conflict")}
    count["stripes"] = sum(kinds.count(kind) for kind in STRIPE_KINDS)
    donor = role == "donor"
    clean = (count["stripes"] + count["coarse"] + count["prior"] + (count["conflict"] if donor else 0)) / n
    blind = (0.5 * count["stripes"] + 0.25 * count["coarse"] + count["prior"]) / n
    low, high = clean - blind - (count["conflict"] / 3 / n if donor else 0.0), clean - blind
    # chance answers of the items of one shared image agree: each image adds its size squared, not its size
    groups = (("stripes", list(STRIPE_KINDS)), ("coarse", ["coarse"]), ("conflict", ["conflict"]))
    weight = {k: float(ctx.items.filter(pl.col("kind").is_in(ks))["group_size"].sum()) for k, ks in groups}
    variance = 0.25 * weight["stripes"] + 0.1875 * weight["coarse"] + (2 / 9 * weight["conflict"] if donor else 0.0)
    tol = max(toy.share_tolerance, 3 * math.sqrt(variance) / n)
    measured = ctx.metric(model, "mg")
    ok = low - tol <= measured <= high + tol
    planted = f"{low:.3f}-{high:.3f}" if high > low else f"{high:.3f}"
    return [Row(model, "MG = S_v - S_wv", planted, measured, f"±{tol:.3f}", ok)]


def c_rate(ctx: Context, model: str, role: str) -> list[Row]:
    """The paper's identity-based C rate beside the planted blur survivors plus their chance agreement.

    Survivors of the blur ladder are every coarse, prior and conflict item. A stripe (binary) item survives by
    identity only by chance: between (1/2)^n over the n levels that erase its stripes (independent coin flips) and
    1/2 (a model that defaults to one answer under blur). The margin-based C rate should equal the survivors."""
    toy = ctx.config.toy
    assert toy is not None
    items = ctx.items
    survivors = share(~items["kind"].is_in(list(STRIPE_KINDS)))
    stripes = items.filter(pl.col("kind").is_in(list(STRIPE_KINDS)))
    kernels = ctx.config.render.blur.kernels[1:]
    erasing = [
        sum(not cue_visible(k, e, kernel) for kernel in kernels)
        for k, e in stripes.select("kind", "erased_from").rows()
    ]
    low = survivors + sum(0.5**n for n in erasing) / items.height
    high = survivors + 0.5 * len(erasing) / items.height
    identity = ctx.metric(model, "c_rate")
    margin = ctx.metric(model, "c_rate_margin")
    tol = toy.share_tolerance
    return [
        Row(
            model,
            "C rate (identity)",
            f"{low:.3f}-{high:.3f}",
            identity,
            f"±{tol:.2f}",
            low - tol <= identity <= high + tol,
        ),
        Row(model, "C rate (margin)", f"{survivors:.3f}", margin, f"±{tol:.2f}", abs(margin - survivors) <= tol),
    ]


def interval_widths(values: np.ndarray, groups: list[str], confidence: float) -> tuple[float, float]:
    """The normal-approximation width of a mean's interval counting each image once (the cluster-robust standard
    error over the images) and counting each item once."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    n = len(values)
    p = float(values.mean())
    ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    index = np.array([ids[g] for g in groups])
    residual = np.bincount(index, weights=values - p)  # per image: its items' sum minus their share of the mean
    clusters = len(ids)
    se_images = math.sqrt(float((residual**2).sum()) * clusters / max(clusters - 1, 1)) / n
    se_items = math.sqrt(p * (1 - p) / n)
    return 2 * z * se_images, 2 * z * se_items


def clustered_intervals(ctx: Context, model: str, role: str) -> list[Row]:
    """Items that share an image are one observation (``toy.shared_images``: the model answers a group alike). The
    C rate's interval must be as wide as its images allow (the cluster-robust width, within the tolerance), not as
    narrow as its items would make it: the planted design effect, seen in the decay stage's intervals."""
    toy = ctx.config.toy
    assert toy is not None
    items = ctx.decay_items(model).filter(pl.col("consecutive_identical").is_not_null())
    groups = dict(zip(ctx.items["item_id"].to_list(), ctx.items["image_group"].to_list(), strict=True))
    if not toy.shared_images or items.height < 10:
        return []
    values = items["consecutive_identical"].cast(pl.Float64).to_numpy()
    images, per_item = interval_widths(values, [groups[i] for i in items["item_id"].to_list()], 0.95)
    table = read_frame(output_path(ctx.results, "decay", "metrics", model=model, bench=ctx.bench))
    row = table.filter((pl.col("metric") == "c_rate") & (pl.col("family") == "all")).row(0, named=True)
    measured = (row["ci_high"] - row["ci_low"]) / images
    tol = toy.cluster_tolerance
    return [
        Row(
            model,
            "C interval / image-level width",
            f"1 (items: {per_item / images:.2f})",
            measured,
            f"±{tol:.2f}",
            abs(measured - 1) <= tol,
        )
    ]


PROBE_DECODABLE = 0.9
TAKEOVER_MARGIN = 0.05
"""P(prior) overtakes P(gold) at the first layer from which it stays ahead by this much through every later layer
(at chance-level layers the two curves cross back and forth by noise)."""
PLANTED_PROBE_TARGETS = ("metadata:colour", "metadata:orientation")


def probe_decodability(ctx: Context, model: str, role: str) -> list[Row]:
    """The planted colour and stripe labels are decodable from image-token features (clean images, held out) at
    some layer, with positive selectivity there. Skipped when the probe stage did not run for this model."""
    probes = ctx.probes(model)
    if probes is None:
        return []
    rows = []
    for target in PLANTED_PROBE_TARGETS:
        table = probes.filter(
            (pl.col("target") == target)
            & (pl.col("feature") == "image_mean")
            & (pl.col("probe") == "mlp")
            & (pl.col("subset") == "all")
            & (pl.col("level") == "blur/0")
        )
        if table.is_empty():
            rows.append(Row(model, f"probe {target} (not run)", f">= {PROBE_DECODABLE}", float("nan"), "-", False))
            continue
        best = table.sort("accuracy", descending=True).row(0, named=True)
        name = target.removeprefix("metadata:")
        rows.append(
            Row(
                model,
                f"probe {name}: best accuracy (L{best['layer']})",
                f">= {PROBE_DECODABLE:.2f}",
                best["accuracy"],
                "-",
                best["accuracy"] >= PROBE_DECODABLE,
            )
        )
        rows.append(
            Row(
                model,
                f"probe {name}: selectivity (L{best['layer']})",
                "> 0",
                best["selectivity"],
                "-",
                best["selectivity"] > 0,
            )
        )
    return rows


def prior_takeover(ctx: Context, model: str, role: str) -> list[Row]:
    """On conflict items (the prior differs from gold), P(gold) and P(prior) through depth from the last-token
    gold probe on clean images; reports the first layer where P(prior) overtakes P(gold), if any."""
    probes = ctx.probes(model)
    if probes is None or role != "base":
        return []
    curve = probes.filter(
        (pl.col("target") == "gold")
        & (pl.col("feature") == "last_token")
        & (pl.col("probe") == "mlp")
        & (pl.col("subset") == "prior_differs")
        & (pl.col("level") == "blur/0")
    ).sort("layer")
    if curve.is_empty():
        return []
    gold, prior = curve["p_gold"].to_list(), curve["p_prior"].to_list()
    ctx.notes.append(f"{model}: conflict items, last-token probe: P(gold) by layer {[round(g, 3) for g in gold]}")
    ctx.notes.append(f"{model}: conflict items, last-token probe: P(prior) by layer {[round(p, 3) for p in prior]}")
    ahead = [p - g > TAKEOVER_MARGIN for g, p in zip(gold, prior, strict=True)]
    over = next((layer for layer in range(len(ahead)) if all(ahead[layer:])), None)
    ctx.notes.append(
        f"{model}: P(prior) overtakes P(gold) at layer {over}"
        if over is not None
        else f"{model}: P(prior) never overtakes P(gold)"
    )
    # A base answers conflict items with the hint, so by its last layer the prior must lead; where it takes over
    # is what the probe measures, and is reported.
    measured = float("nan") if over is None else float(over)
    return [Row(model, "layer where P(prior) > P(gold)", "<= last", measured, "-", over is not None)]


# ------------------------------------------------------------------------------------------------ swap, patch

SWAP_FOLLOW_TOLERANCE = 0.02
"""Swapping the planted layer alone must reproduce the donor's follow-image rate on conflict items this closely."""
PATCH_RESTORE_THRESHOLD = 0.9
"""Share of clean-correct stripe items whose clean answer a first-layer image-token patch must restore."""
FIX_SHARE = 0.9
"""A spec 'holds the fix' when it recovers this share of the donor's follow-image gain over the base."""


def _condition_rows(table: pl.DataFrame, family: str = "blur", level: int = 0) -> pl.DataFrame:
    return table.filter((pl.col("family") == family) & (pl.col("level") == level))


def swap_checks(ctx: Context, pair: str) -> list[Row]:
    """A layer donor: its planted layer alone reproduces the donor's follow-image rate on conflict items, and every
    other single-layer swap changes no answer of the base. Any donor: the ``base`` and ``donor`` references answer
    as the predict stage's base and donor models did; a full donor's sweep is summarised where the fix lives."""
    spec = ctx.config.swap.pairs[pair]
    path = output_path(ctx.results, "swap", "swaps", pair=pair, bench=ctx.bench)
    if spec.donor is None or not path.is_file():
        return []
    table = _condition_rows(read_frame(path))
    value = {r["spec"]: r for r in table.iter_rows(named=True)}
    rows = []
    donor_follow, base_follow = value["donor"]["follow_image"], value["base"]["follow_image"]
    rows.append(
        Row(
            pair,
            "base follows image less than donor",
            "yes",
            donor_follow - base_follow,
            "> 0.5",
            donor_follow - base_follow > 0.5,
        )
    )
    rows += _reference_rows(ctx, pair, spec.base, spec.donor)
    planted = planted_layers(ctx.config.models[spec.donor].path)
    singles = {
        r["layers"][0]: r for r in table.iter_rows(named=True) if r["kind"] == "window" and len(r["layers"]) == 1
    }
    if planted is not None:
        (layer,) = planted
        if layer not in singles:
            ctx.notes.append(f"{pair}: no single-layer swap of layer {layer} ran (swap.specs.windows lacks 1)")
            return rows
        measured = singles[layer]["follow_image"]
        rows.append(
            Row(
                pair,
                f"layer {layer} swap: follow-image",
                f"{donor_follow:.3f}",
                measured,
                f"±{SWAP_FOLLOW_TOLERANCE:.2f}",
                abs(measured - donor_follow) <= SWAP_FOLLOW_TOLERANCE,
            )
        )
        others = [r["flip_vs_base"] for j, r in singles.items() if j != layer]
        worst = max(others) if others else float("nan")
        rows.append(Row(pair, "other single layers: flip vs base", "0.000", worst, "= 0", worst == 0.0))
        findings = swap_findings(table)  # the report's sentence on this pair
        named = bool(findings) and findings[0].spec == singles[layer]["spec"]
        rows.append(Row(pair, f"report names {singles[layer]['spec']}", "1.000", float(named), "= 1", named))
    else:
        _where_the_fix_lives(ctx, pair, table, base_follow, donor_follow)
    return rows


def _reference_rows(ctx: Context, pair: str, base: str, donor: str) -> list[Row]:
    """The swap's ``base`` and ``donor`` references against the predict stage's answers of the same models."""
    answers = read_frame(output_path(ctx.results, "swap", "answers", pair=pair, bench=ctx.bench))
    rows = []
    for spec, model in (("base", base), ("donor", donor)):
        predictions = output_path(ctx.results, "predict", "predictions", model=model, bench=ctx.bench)
        if not predictions.is_file():
            continue
        mine = answers.filter(pl.col("spec") == spec).select("item_id", "family", "level", "parsed")
        theirs = read_frame(predictions).select("item_id", "family", "level", pl.col("parsed").alias("p"))
        joined = mine.join(theirs, on=["item_id", "family", "level"])
        same = share(joined["parsed"].eq_missing(joined["p"])) if joined.height else float("nan")
        rows.append(Row(pair, f"'{spec}' answers = predict's {model}", "1.000", same, ">= 0.99", same >= 0.99))
    return rows


def _where_the_fix_lives(ctx: Context, pair: str, table: pl.DataFrame, base: float, donor: float) -> None:
    gain = donor - base
    ctx.notes.append(f"{pair}: follow-image on conflict items: base {base:.3f}, donor {donor:.3f}")
    for r in table.iter_rows(named=True):
        if r["kind"] != "reference":
            recovered = (r["follow_image"] - base) / gain if gain else float("nan")
            ctx.notes.append(
                f"{pair}:   {r['spec']:<14} follow-image {r['follow_image']:.3f} ({recovered:+.0%} of the gain)"
            )
    holding = [
        r
        for r in table.iter_rows(named=True)
        if r["kind"] != "reference" and gain and (r["follow_image"] - base) / gain >= FIX_SHARE
    ]
    if holding:
        smallest = min(holding, key=lambda r: (len(r["layers"]) + len(r["units"]), r["spec"]))
        ctx.notes.append(
            f"{pair}: the fix lives in {smallest['spec']} (the smallest spec recovering "
            f">= {FIX_SHARE:.0%} of the donor's gain)"
        )
    else:
        ctx.notes.append(f"{pair}: no single spec recovers {FIX_SHARE:.0%} of the donor's gain: the fix is spread")


def patch_checks(ctx: Context, model: str, role: str) -> list[Row]:
    """Clean image-token states patched into the most-blurred run at the first layer restore the clean answer on
    stripe items the model answers correctly when clean (every other position of that run is the same prompt, so
    the patched run is the clean run); the restoration curves by layer are reported."""
    path = output_path(ctx.results, "patch", "per_item", model=model, bench=ctx.bench)
    if not path.is_file():
        return []
    rows = read_frame(path).join(ctx.items.select("item_id", "kind"), on="item_id")
    source, target = "blur/0", f"blur/{len(ctx.config.render.blur.kernels) - 1}"
    pair = rows.filter((pl.col("source") == source) & (pl.col("target") == target))
    if pair.is_empty():
        ctx.notes.append(f"{model}: no {source}->{target} patches to check")
        return []
    stripes = pair.filter(pl.col("kind").is_in(list(STRIPE_KINDS)) & (pl.col("source_answer") == pl.col("gold")))
    first = stripes.filter((pl.col("position") == "image") & (pl.col("layer") == 0))
    restored = share(first["patched_answer"] == first["source_answer"]) if first.height else float("nan")
    out = [
        Row(
            model,
            "layer-0 image patch restores clean",
            f">= {PATCH_RESTORE_THRESHOLD:.2f}",
            restored,
            f">= {PATCH_RESTORE_THRESHOLD:.2f}",
            restored >= PATCH_RESTORE_THRESHOLD,
        )
    ]
    for position in ("image", "last"):
        curve = (
            stripes.filter(pl.col("position") == position)
            .group_by("layer")
            .agg((pl.col("patched_answer") == pl.col("source_answer")).mean().alias("r"))
            .sort("layer")
        )
        if curve.height:
            ctx.notes.append(
                f"{model}: {source}->{target}, stripe items, {position} tokens patched: clean answer "
                f"restored by layer {[round(v, 3) for v in curve['r'].to_list()]}"
            )
    return out


CHECKS: list[Callable[[Context, str, str], list[Row]]] = [
    item_classes,
    item_lost_levels,
    by_level,
    class_shares,
    vision_indispensable,
    conflict_class,
    c_rate,
    clustered_intervals,
    multimodal_gain,
    probe_decodability,
    prior_takeover,
    patch_checks,
]


def calibrate(config: BlindspotConfig, results: str | Path = "results") -> tuple[list[Row], list[str]]:
    if config.toy is None:
        raise ValueError("toy: the config has no toy section; calibration needs the toy world")
    if not config.toy.models:
        raise ValueError("toy.models: name the toy models to calibrate (model: base | donor)")
    results = Path(results)
    staged = output_path(results, "stage", "item_table", bench=config.toy.benchmark)
    if not staged.is_file():
        raise FileNotFoundError(f"no staged toy benchmark at '{staged}'; run the workflow first")
    items = read_frame(staged)
    meta = [json.loads(m) for m in items["metadata"]]
    items = items.with_columns(
        pl.Series("kind", [m.get("kind") for m in meta]),
        pl.Series("prior_answer", [m.get("prior_answer") for m in meta]),
        pl.Series("erased_from", [m.get("erased_from") for m in meta], dtype=pl.Int64),
        pl.Series("image_group", [image_group(keys) for keys in items["image_keys"].to_list()]),
    )
    items = items.with_columns(pl.len().over("image_group").alias("group_size"))
    ctx = Context(config, results, items)
    rows = [row for model, role in config.toy.models.items() for check in CHECKS for row in check(ctx, model, role)]
    rows += [row for pair in config.swap.pairs for row in swap_checks(ctx, pair)]
    rows += [row for model, role in config.toy.lens_models.items() for row in depth_checks(ctx, model, role)]
    rows += compare_checks(ctx) + hybrid_checks(ctx) + export_checks(ctx)
    return rows, ctx.notes


def format_rows(rows: list[Row]) -> str:
    header = f"{'model':22s} {'quantity':34s} {'planted':>13s} {'measured':>9s} {'tolerance':>10s}  ok"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.model:22s} {r.quantity:34s} {r.planted:>13s} {r.measured:9.3f} {r.tolerance:>10s}  "
            f"{'yes' if r.ok else 'NO'}"
        )
    return "\n".join(lines)
