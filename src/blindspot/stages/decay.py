"""The decay step: docs/method.md §1 and §4 from a predictions table. CPU only.

Per (family, level): the identical-answer rate E_j (the answer equals the clean one, compared as the scorer
normalises answers: "Red" and "red" are one answer), the evidence-based survival rate (the clean answer stays the
top option by at least ``margin_threshold`` nats), accuracy, accuracy on the C=1 subset, and outcome counts
(unparsed and abstain included). Per benchmark: the C rate (the answer never changes along the blur ladder) with
two chance levels, the same with evidence-based survival, MG = S_v - S_wv, ML = max(0, S_wv - S_t) where the base
language model answered (the ``llm`` condition; otherwise null, with the reason in ``note``),
and the shares of each item class (and of the vision-indispensable items: fine or coarse visual). Every rate
comes with a cluster-bootstrap interval over source images
(:mod:`blindspot.statistics`).

**Item classes.** ``unparsed`` (no clean answer to follow), ``uncertain`` (the clean answer is not confident: its
margin over the runner-up is below the threshold, so there is nothing firm to survive), ``fine_visual`` (the answer
does not survive the blur ladder), ``coarse_visual`` (survives blur, not blank / noise / no image) and
``language_prior`` (survives everything). An item is judged by its option margins where the first generated token
was an option label at every condition (then the log-probs describe the answer given), by identity otherwise
(``judged_by``); ``class_identity`` is the identity reading for every item. Identity alone counts chance agreement
as survival: a binary item whose blurred answers default to one option keeps its clean answer half the time.

**Chance levels of C.** ``c_chance`` is the formula ``(1/K)^L`` (K options, L obfuscated levels): a model that
flips a fair coin without evidence. Real models default to an answer instead. ``c_chance_empirical`` estimates the
chance from the model's own answers under the uninformative conditions (``decay.coarse_families``): for each answer
space (answer type, number of options), q is the distribution of its normalised answers there, and an item whose
clean answer is a would survive L levels without evidence with probability q(a)^L; the rate is the mean over items.
A model that always says "no" without evidence gives its "no" items a chance of 1.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from blindspot.answers import identity_key
from blindspot.benchmarks import get_benchmark
from blindspot.benchmarks.generic import PairedOfficial, paired_official
from blindspot.benchmarks.official import official_rows
from blindspot.benchmarks.registry import BenchmarkScoring
from blindspot.config import DecayConfig
from blindspot.contracts.answers import (
    OUTCOMES,
    UNPARSED_BY_TYPE,
    chance_options,
    mostly_unparsed_warning,
    option_margin,
)
from blindspot.contracts.conditions import LLM_FAMILY, NONE_FAMILY, Condition
from blindspot.contracts.items import image_group
from blindspot.contracts.tables import DECAY_ITEMS_SCHEMA, DECAY_METRICS_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.stages.slices import DecaySlice
from blindspot.stages.table import JobContext, Paths
from blindspot.statistics import ClusterBootstrap, Estimate, cluster_ids
from blindspot.store.atomic import atomic_output
from blindspot.store.provenance import provenance
from blindspot.store.tables import read_frame, read_provenance, write_table

CLASSES = ("fine_visual", "coarse_visual", "language_prior", "uncertain", "unparsed")
VISION_CLASSES = ("fine_visual", "coarse_visual")
"""The classes of a vision-indispensable item: its answer needs the image (fine detail, or coarse shape)."""
NO_FIRM_ANSWER = ("uncertain", "unparsed")
"""Classes with no firm clean answer to lose: their ``first_lost_level`` is null."""


class DecayError(BlindspotError):
    """The predictions cannot support the decay metrics (one line)."""


@dataclass
class Grid:
    """Predictions as item x condition arrays (items in first-seen order, conditions sorted)."""

    item_ids: list[str]
    answer_types: list[str]
    n_options: np.ndarray  # (items,) float, NaN where not a closed answer space
    clusters: np.ndarray  # (items,) int: the source-image cluster of each item
    conditions: list[Condition]
    parsed: np.ndarray  # (items, conditions) object: str or None
    key: np.ndarray  # (items, conditions) object: the identity key of the parsed answer
    outcome: np.ndarray  # (items, conditions) object
    score: np.ndarray  # (items, conditions) float
    hedged: np.ndarray  # (items, conditions) bool: an answer given beside a refusal or a hedge
    score_official: np.ndarray  # (items, conditions) float: the official scorer on the raw response; NaN if none
    margin: np.ndarray  # (items, conditions) float: clean answer's log-prob minus the best other; NaN if none
    label_first: np.ndarray  # (items, conditions) bool: the first generated token was an option label
    gold: list[str] = field(default_factory=list)
    option_lp: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)
    """(item, condition) -> option label -> log-probability, where the model scored the options."""

    def column(self, family: str, level: int) -> int:
        for index, c in enumerate(self.conditions):
            if c.family == family and c.level == level:
                return index
        raise KeyError(f"{family}/{level}")

    def levels(self, family: str) -> list[int]:
        return sorted(c.level for c in self.conditions if c.family == family)

    def columns(self, family: str, exclude: int | None = None) -> list[int]:
        return [self.column(family, lv) for lv in self.levels(family) if self.column(family, lv) != exclude]


def build_grid(predictions: pl.DataFrame, clean: tuple[str, int], groups: dict[str, str] | None = None) -> Grid:
    """``groups``: item id -> source-image group (items without one are their own cluster)."""
    keys = predictions.select("family", "level", "param").unique().sort("family", "level")
    conditions = [Condition(r["family"], r["level"], r["param"]) for r in keys.iter_rows(named=True)]
    if not any((c.family, c.level) == clean for c in conditions):
        raise DecayError(f"predictions have no clean condition {clean[0]}/{clean[1]}; nothing to compare against")
    firsts = predictions.unique("item_id", keep="first", maintain_order=True)
    item_ids = firsts["item_id"].to_list()
    answer_types = firsts["answer_type"].to_list()
    row_of = {item: i for i, item in enumerate(item_ids)}
    col_of = {(c.family, c.level): j for j, c in enumerate(conditions)}
    shape = (len(item_ids), len(conditions))
    parsed = np.full(shape, None, dtype=object)
    key = np.full(shape, None, dtype=object)
    outcome = np.full(shape, None, dtype=object)
    score = np.full(shape, np.nan)
    score_official = np.full(shape, np.nan)
    hedged = np.zeros(shape, dtype=bool)
    label_first = np.zeros(shape, dtype=bool)
    logprobs: dict[tuple[int, int], dict[str, float]] = {}
    has_first = "first_token_is_label" in predictions.columns
    for r in predictions.iter_rows(named=True):
        i, j = row_of[r["item_id"]], col_of[(r["family"], r["level"])]
        if outcome[i, j] is not None:
            raise DecayError(f"item '{r['item_id']}' has two predictions for {r['family']}/{r['level']}")
        parsed[i, j], outcome[i, j], score[i, j] = r["parsed"], r["outcome"], r["score"]
        key[i, j] = identity_key(r["parsed"], answer_types[i])
        hedged[i, j] = bool(r.get("hedged"))
        if r.get("score_official") is not None:
            score_official[i, j] = r["score_official"]
        if r["option_labels"] is not None:
            logprobs[(i, j)] = dict(zip(r["option_labels"], r["option_logprobs"], strict=True))
            label_first[i, j] = bool(r["first_token_is_label"]) if has_first else True
    missing = [(item_ids[i], conditions[j]) for i, j in zip(*np.nonzero(outcome == None), strict=True)]  # noqa: E711
    if missing:
        item, c = missing[0]
        raise DecayError(f"item '{item}' has no prediction for {c.family}/{c.level} ({len(missing)} missing in all)")

    clean_col = col_of[clean]
    margin = np.full(shape, np.nan)
    for (i, j), lp in logprobs.items():
        lead = option_margin(lp, parsed[i, clean_col])
        if lead is not None:
            margin[i, j] = lead
    n_options = np.array(
        [chance_options(r["answer_type"], r["n_options"]) or np.nan for r in firsts.iter_rows(named=True)],
        dtype=float,
    )
    clusters = cluster_ids([(groups or {}).get(item, f"item:{item}") for item in item_ids])
    return Grid(
        item_ids,
        answer_types,
        n_options,
        clusters,
        conditions,
        parsed,
        key,
        outcome,
        score,
        hedged,
        score_official,
        margin,
        label_first,
        firsts["gold"].to_list() if "gold" in firsts.columns else [],
        logprobs,
    )


def _identical(grid: Grid, j: int, clean_col: int) -> np.ndarray:
    return np.array([k is not None and k == c for k, c in zip(grid.key[:, j], grid.key[:, clean_col], strict=True)])


def _survives(grid: Grid, cols: list[int], clean_col: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(identity, margin) survival over the given conditions: (items,) bool each (margin False where unjudged)."""
    identical = np.ones(len(grid.item_ids), dtype=bool)
    margin_ok = np.ones(len(grid.item_ids), dtype=bool)
    for j in cols:
        identical &= _identical(grid, j, clean_col)
        margin_ok &= np.nan_to_num(grid.margin[:, j], nan=-np.inf) >= threshold
    return identical, margin_ok


def first_lost_level(
    grid: Grid, ladder_cols: list[int], clean_col: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the first blur level (the condition's ``level``) whose answer is not the clean one, by identity
    and by margin; -1 where every level keeps it (a level's loss counts whatever the levels after it do)."""
    n = len(grid.item_ids)
    by_identity, by_margin = np.full(n, -1), np.full(n, -1)
    for j in sorted(ladder_cols, key=lambda j: grid.conditions[j].level):
        level = grid.conditions[j].level
        lost_identity = ~_identical(grid, j, clean_col)
        lost_margin = np.nan_to_num(grid.margin[:, j], nan=-np.inf) < threshold
        by_identity[(by_identity < 0) & lost_identity] = level
        by_margin[(by_margin < 0) & lost_margin] = level
    return by_identity, by_margin


def _classify(blur: np.ndarray, coarse: list[np.ndarray], clean_ok: np.ndarray) -> np.ndarray:
    out = np.where(blur, "language_prior", "fine_visual").astype(object)
    for survived in coarse:
        out[blur & ~survived] = "coarse_visual"
    out[~clean_ok] = "unparsed"
    return out


def empirical_chance(grid: Grid, clean_col: int, uninformative: list[int], ladder: int) -> np.ndarray:
    """Per item, q(clean answer)^L from the model's answers under the uninformative conditions (module docstring);
    NaN where the item's answer space has no answer under those conditions."""
    spaces = [(t, n) for t, n in zip(grid.answer_types, np.nan_to_num(grid.n_options, nan=-1), strict=True)]
    counts: dict[tuple[str, float], Counter[str]] = {}
    for i, space in enumerate(spaces):
        for j in uninformative:
            if grid.key[i, j] is not None:
                counts.setdefault(space, Counter())[grid.key[i, j]] += 1
    out = np.full(len(grid.item_ids), np.nan)
    for i, space in enumerate(spaces):
        seen = counts.get(space)
        answer = grid.key[i, clean_col]
        if seen and answer is not None:
            out[i] = (seen[answer] / sum(seen.values())) ** ladder
    return out


def check_families(grid: Grid, config: DecayConfig) -> None:
    """The blur family and every coarse family must be in the predictions (one line naming the key otherwise)."""
    blur = config.blur_family
    missing = [f for f in [blur, *config.coarse_families] if not grid.levels(f)]
    if missing:
        have = ", ".join(sorted({c.family for c in grid.conditions}))
        raise DecayError(
            f"{', '.join(missing)} not in the predictions (have: {have}); add the family to the render config or "
            "predict.conditions, or remove it from decay.coarse_families",
            key="decay.coarse_families" if blur not in missing else "decay.blur_family",
        )


@dataclass(frozen=True)
class Survival:
    """What each item's answers did along the ladder and under the coarse families: (items,) arrays."""

    clean_col: int
    ladder_cols: list[int]
    coarse_cols: dict[str, list[int]]
    clean_ok: np.ndarray  # the clean answer was read (correct or wrong)
    by_margin: np.ndarray  # judged by option margins: a label first at every condition and a clean margin
    confident: np.ndarray  # the clean answer's margin is at least the threshold
    c_identity: np.ndarray  # the answer is identical at every blur level (and the clean one was read)
    c_margin: np.ndarray  # the clean answer stays on top by the threshold at every blur level
    coarse: list[tuple[np.ndarray, np.ndarray]]  # (identity, margin) survival of each coarse family
    lost: np.ndarray  # the first blur level that loses the clean answer (-1: none), by the item's basis
    parsed: np.ndarray  # (items, conditions): an answer was read


def survival(grid: Grid, config: DecayConfig) -> Survival:
    blur, threshold = config.blur_family, config.margin_threshold
    clean_col = grid.column(blur, 0)
    n = len(grid.item_ids)
    clean_ok = np.array([grid.outcome[i, clean_col] in {"correct", "wrong"} for i in range(n)])
    ladder_cols = grid.columns(blur, exclude=clean_col)
    coarse_cols = {f: grid.columns(f) for f in config.coarse_families}
    every_col = [clean_col, *ladder_cols, *(j for cols in coarse_cols.values() for j in cols)]
    by_margin = grid.label_first[:, every_col].all(axis=1) & ~np.isnan(grid.margin[:, clean_col])
    confident = np.nan_to_num(grid.margin[:, clean_col], nan=-np.inf) >= threshold

    c_identity, c_margin = _survives(grid, ladder_cols, clean_col, threshold)
    lost_identity, lost_margin = first_lost_level(grid, ladder_cols, clean_col, threshold)
    lost = np.where(by_margin, lost_margin, lost_identity)
    c_identity &= clean_ok
    coarse = [_survives(grid, cols, clean_col, threshold) for cols in coarse_cols.values()]
    parsed = np.isin(grid.outcome, ("correct", "wrong"))
    return Survival(
        clean_col, ladder_cols, coarse_cols, clean_ok, by_margin, confident, c_identity, c_margin, coarse, lost, parsed
    )


@dataclass
class MetricRows:
    """The metric rows of one job, and the rule that withholds a rate resting on too few parsed answers."""

    boot: ClusterBootstrap
    least: int
    """``decay.min_parsed``."""
    rows: list[dict[str, Any]] = field(default_factory=list)

    def too_few(self, count: int, what: str) -> str | None:
        """The reason a rate is not reported: fewer than ``decay.min_parsed`` answers behind it."""
        return f"only {count} {what} (decay.min_parsed is {self.least})" if count < self.least else None

    def add(
        self,
        family: str,
        level: int,
        param: float | None,
        metric: str,
        stat: Estimate,
        note: str | None = None,
        unreported: str | None = None,
    ) -> None:
        """One metric row. ``unreported``: why the value is withheld (null, never a 0.0 computed from nothing);
        a value that is null for want of items always carries a note."""
        value, low, high = stat.value, stat.low, stat.high
        if unreported is not None:
            value, low, high, note = None, None, None, unreported
        elif value is None and note is None:
            note = "no item to compute it from"
        row = {"family": family, "level": level, "param": param, "metric": metric}
        self.rows.append(row | {"value": value, "ci_low": low, "ci_high": high, "n": stat.n, "note": note})


@dataclass(frozen=True)
class Bases:
    """Which items each kind of rate rests on, and why a rate is withheld for want of them."""

    everyone: np.ndarray
    judged: np.ndarray  # a clean answer read and judged by option margins
    no_clean: str | None
    unjudged: str | None

    @classmethod
    def of(cls, s: Survival, out: MetricRows) -> Bases:
        n = len(s.clean_ok)
        judged = s.clean_ok & s.by_margin
        no_clean = out.too_few(int(s.clean_ok.sum()), f"of {n} clean answers parsed")
        unjudged = (
            "no item is judged by option margins (open answers, or a first generated token that is not an option label)"
            if not judged.any()
            else out.too_few(int(judged.sum()), "items judged by option margins")
        )
        return cls(np.ones(n, dtype=bool), judged, no_clean, unjudged)


def condition_rows(grid: Grid, s: Survival, b: Bases, config: DecayConfig, out: MetricRows) -> None:
    """Per (family, level): identical-answer and margin-survival rates, accuracy (all items, C subset), outcomes."""
    n, clean_col, boot, add = len(grid.item_ids), s.clean_col, out.boot, out.add
    for j, c in enumerate(grid.conditions):
        at = (c.family, c.level, c.param)
        identical = _identical(grid, j, clean_col).astype(float)
        add(*at, "identical_rate", boot.mean(identical, s.clean_ok), unreported=b.no_clean)
        survived = np.nan_to_num(grid.margin[:, j], nan=-np.inf) >= config.margin_threshold
        add(*at, "margin_survival_rate", boot.mean(survived.astype(float), b.judged), unreported=b.unjudged)
        binary = bool(np.isin(grid.score[:, j], (0.0, 1.0)).all())
        unread = out.too_few(int(s.parsed[:, j].sum()), f"of {n} answers parsed at this level")
        add(*at, "accuracy", boot.mean(grid.score[:, j], b.everyone, proportion=binary), unreported=unread)
        subset = out.too_few(int(s.c_identity.sum()), "items in the C subset (answer unchanged at every blur level)")
        accuracy_c1 = boot.mean(grid.score[:, j], s.c_identity, proportion=binary)
        add(*at, "accuracy_c1", accuracy_c1, unreported=unread or subset)
        for outcome in (*OUTCOMES, "hedged"):
            hit = grid.hedged[:, j] if outcome == "hedged" else grid.outcome[:, j] == outcome
            add(*at, f"n_{outcome}", Estimate(float(hit.sum()), None, None, n))
            add(*at, f"share_{outcome}", boot.mean(hit.astype(float), b.everyone))
        official = grid.score_official[:, j]
        if np.isfinite(official).any():
            add(*at, "accuracy_official", boot.mean(np.nan_to_num(official), b.everyone))


def content_free_prior(grid: Grid, families: list[str]) -> dict[int, dict[str, float]]:
    """Per item, its content-free option prior as log-probabilities: the mean of the option log-probabilities over
    the content-free conditions it was scored at (``decay.content_free``: no image, a blank image), where every one
    of them scored the same options. The geometric mean (not the arithmetic mean of probabilities) makes the
    correction cancel a constant preference for an option exactly, however many content-free inputs there are."""
    columns = [j for j, c in enumerate(grid.conditions) if c.family in families]
    prior: dict[int, dict[str, float]] = {}
    for i in range(len(grid.item_ids)):
        found = [grid.option_lp.get((i, j)) for j in columns]
        if not columns or any(lp is None for lp in found) or len({tuple(lp) for lp in found if lp}) != 1:
            continue
        labels = list(found[0])  # type: ignore[arg-type]
        mean = np.mean([[lp[k] for k in labels] for lp in found if lp], axis=0)
        prior[i] = dict(zip(labels, mean - np.logaddexp.reduce(mean), strict=True))
    return prior


def prior_rows(grid: Grid, config: DecayConfig, out: MetricRows) -> None:
    """Per condition: the prior-corrected accuracy (each option's probability divided by the item's content-free
    prior, then the top option against gold: a constant preference for one option, however strong, cancels) over
    the items with a prior, and the yes-rate of yes/no items (a shift of it is a bias, never visual reliance)."""
    prior = content_free_prior(grid, config.content_free)
    rows = np.array(sorted(prior), dtype=int)
    yes_no = np.array([t == "yes_no" for t in grid.answer_types])
    why = f"no item was scored on its options at every content-free condition ({', '.join(config.content_free)})"
    for j, c in enumerate(grid.conditions):
        at = (c.family, c.level, c.param)
        right = np.zeros(len(grid.item_ids))
        mask = np.zeros(len(grid.item_ids), dtype=bool)
        for i in rows:
            lp = grid.option_lp.get((i, j))
            if lp is None or set(lp) != set(prior[i]) or not grid.gold:
                continue
            corrected = {k: v - prior[i][k] for k, v in lp.items()}
            right[i], mask[i] = float(max(corrected, key=corrected.__getitem__) == grid.gold[i]), True
        unread = None if mask.any() else why
        out.add(*at, "accuracy_prior_corrected", out.boot.mean(right, mask), unreported=unread)
        if (c.family, c.level) == (config.blur_family, 0):
            out.add(*EVERY, "accuracy_clean_prior_corrected", out.boot.mean(right, mask), unreported=unread)
        if yes_no.any():
            said_yes = np.array([k == "yes" for k in grid.key[:, j]], dtype=float)
            out.add(*at, "yes_rate", out.boot.mean(said_yes, yes_no & (grid.key[:, j] != None)))  # noqa: E711


EVERY = ("all", -1, None)
"""The (family, level, param) of a per-benchmark row."""


def answer_rows(grid: Grid, s: Survival, b: Bases, out: MetricRows) -> None:
    """Per benchmark: how the answers were read (unparsed, abstain, hedged) and the clean accuracy."""
    boot, add, n = out.boot, out.add, len(grid.item_ids)
    for outcome in ("unparsed", "abstain"):
        add(*EVERY, f"share_{outcome}_answers", boot.mean((grid.outcome == outcome).mean(axis=1), b.everyone))
    types = np.array(grid.answer_types)
    for answer_type in sorted(set(grid.answer_types)):  # a warning per answer type: where the unread answers are
        unparsed = (grid.outcome == "unparsed").mean(axis=1)
        add(*EVERY, f"{UNPARSED_BY_TYPE}{answer_type}", boot.mean(unparsed, types == answer_type))
    add(*EVERY, "share_hedged_answers", boot.mean(grid.hedged.mean(axis=1), b.everyone))
    clean_accuracy = boot.mean(grid.score[:, s.clean_col], b.everyone, proportion=False)
    unread = out.too_few(int(s.parsed[:, s.clean_col].sum()), f"of {n} clean answers parsed")
    add(*EVERY, "accuracy_clean", clean_accuracy, unreported=unread)


def c_rate_rows(grid: Grid, s: Survival, b: Bases, out: MetricRows) -> None:
    """Per benchmark: the C rate by identity and by margin, and its two chance levels (module docstring)."""
    boot, add, clean_ok = out.boot, out.add, s.clean_ok
    ladder = len(s.ladder_cols)
    add(*EVERY, "c_rate", boot.mean(s.c_identity.astype(float), clean_ok), unreported=b.no_clean)
    confident_judged = b.judged & s.confident
    add(
        *EVERY,
        "c_rate_margin",
        boot.mean(s.c_margin.astype(float), confident_judged),
        unreported=b.unjudged or out.too_few(int(confident_judged.sum()), "items with a confident clean answer"),
    )
    chance = (1.0 / grid.n_options) ** ladder
    with_chance = clean_ok & np.isfinite(chance)
    add(
        *EVERY,
        "c_chance",
        boot.mean(np.nan_to_num(chance), with_chance, proportion=False),
        unreported=b.no_clean
        or (None if with_chance.any() else "open answers have no option count K, so no (1/K)^levels chance"),
    )
    uninformative = [j for cols in s.coarse_cols.values() for j in cols]
    if not uninformative:
        add(*EVERY, "c_chance_empirical", Estimate.missing(), "no uninformative condition (coarse_families)")
        return
    empirical = empirical_chance(grid, s.clean_col, uninformative, ladder)
    mask = clean_ok & np.isfinite(empirical)
    unreported = b.no_clean or out.too_few(int(mask.sum()), "items with answers under the uninformative conditions")
    add(*EVERY, "c_chance_empirical", boot.mean(np.nan_to_num(empirical), mask, proportion=False), None, unreported)


def reliance_rows(grid: Grid, s: Survival, b: Bases, out: MetricRows) -> None:
    """Per benchmark: MG = S_v - S_wv and ML = max(0, S_wv - S_t), each null with its reason when it cannot run."""
    boot, add, clean_col, parsed, everyone, n = out.boot, out.add, s.clean_col, s.parsed, b.everyone, len(s.clean_ok)
    if grid.levels(NONE_FAMILY):
        none_col = grid.column(NONE_FAMILY, 1)
        mg = boot.difference(grid.score[:, clean_col], grid.score[:, none_col], everyone)
        read = min(int(parsed[:, clean_col].sum()), int(parsed[:, none_col].sum()))
        add(*EVERY, "mg", mg, unreported=out.too_few(read, f"of {n} answers parsed with, or without, the image"))
    else:
        add(*EVERY, "mg", Estimate.missing(), "the no-image condition 'none' did not run (predict.conditions)")
    if grid.levels(LLM_FAMILY) and grid.levels(NONE_FAMILY):
        none_col, llm_col = grid.column(NONE_FAMILY, 1), grid.column(LLM_FAMILY, 1)
        leak = boot.difference(grid.score[:, none_col], grid.score[:, llm_col], everyone)
        clip = [None if v is None else max(0.0, v) for v in (leak.value, leak.low, leak.high)]
        read = min(int(parsed[:, none_col].sum()), int(parsed[:, llm_col].sum()))
        unread = out.too_few(read, f"of {n} answers parsed without the image, or by the language model")
        add(*EVERY, "ml", Estimate(clip[0], clip[1], clip[2], leak.n), "max(0, S_wv - S_t)", unreported=unread)
    else:
        reason = (
            "needs S_t: set models.<name>.llm to the base language model"
            if not grid.levels(LLM_FAMILY)
            else "needs S_wv: the no-image condition 'none' did not run"
        )
        add(*EVERY, "ml", Estimate.missing(), reason)
    add(*EVERY, "share_judged_by_margin", boot.mean(s.by_margin.astype(float), everyone))


@dataclass(frozen=True)
class Classes:
    """Each item's class by identity, by margin, and the one it is reported under (its basis)."""

    identity: np.ndarray
    margin: np.ndarray
    final: np.ndarray


def item_classes(s: Survival) -> Classes:
    class_identity = _classify(s.c_identity, [ident for ident, _ in s.coarse], s.clean_ok)
    class_margin = _classify(s.c_margin, [marg for _, marg in s.coarse], s.clean_ok)
    class_margin[s.clean_ok & ~s.confident] = "uncertain"
    return Classes(class_identity, class_margin, np.where(s.by_margin, class_margin, class_identity))


def class_rows(classes: Classes, b: Bases, out: MetricRows) -> None:
    """Per benchmark: the share of each item class, on the item's basis and by identity alone. A class other than
    ``unparsed`` needs a read clean answer: where too few were read, its share is null with the reason, never a
    0.0 that rests on unread answers."""
    for name in CLASSES:
        withheld = None if name == "unparsed" else b.no_clean
        final = out.boot.mean((classes.final == name).astype(float), b.everyone)
        out.add(*EVERY, f"share_{name}", final, unreported=withheld)
        identity = out.boot.mean((classes.identity == name).astype(float), b.everyone)
        out.add(*EVERY, f"share_{name}_identity", identity, unreported=withheld)
    needs_image = np.isin(classes.final, VISION_CLASSES).astype(float)
    out.add(*EVERY, "share_vision_indispensable", out.boot.mean(needs_image, b.everyone), unreported=b.no_clean)


def item_rows(grid: Grid, s: Survival, classes: Classes) -> list[dict[str, Any]]:
    """One row per item: its clean answer, basis, survival, first lost level and class."""
    clean, final, lost = grid.parsed[:, s.clean_col], classes.final, s.lost
    return [
        {
            "item_id": item_id,
            "answer_type": grid.answer_types[i],
            "clean_answer": clean[i],
            "clean_outcome": grid.outcome[i, s.clean_col],
            "judged_by": "margin" if s.by_margin[i] else "identity",
            "consecutive_identical": bool(s.c_identity[i]) if s.clean_ok[i] else None,
            "consecutive_margin": bool(s.c_margin[i]) if s.clean_ok[i] and s.by_margin[i] else None,
            "first_lost_level": int(lost[i]) if final[i] not in NO_FIRM_ANSWER and lost[i] >= 0 else None,
            "class_identity": classes.identity[i],
            "class_margin": classes.margin[i] if s.by_margin[i] else None,
            "class": final[i],
            "vision_indispensable": final[i] in VISION_CLASSES,
        }
        for i, item_id in enumerate(grid.item_ids)
    ]


def decay_metrics(grid: Grid, config: DecayConfig, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(metric rows, item rows) for one model x benchmark."""
    check_families(grid, config)
    s = survival(grid, config)
    out = MetricRows(ClusterBootstrap(grid.clusters, config.bootstrap, config.confidence, seed), config.min_parsed)
    bases = Bases.of(s, out)
    condition_rows(grid, s, bases, config, out)
    prior_rows(grid, config, out)
    answer_rows(grid, s, bases, out)
    c_rate_rows(grid, s, bases, out)
    reliance_rows(grid, s, bases, out)
    classes = item_classes(s)
    class_rows(classes, bases, out)
    return out.rows, item_rows(grid, s, classes)


@dataclass(frozen=True)
class DecayOutcome:
    """What a decay job reports on the console: its item count and how its answers were read."""

    n_items: int
    shares: dict[str, float | None]
    """share of unparsed, abstained and hedged answers (all conditions), and of uncertain items."""
    unparsed_by_type: dict[str, float | None]
    """share of unparsed answers within each answer type."""

    @classmethod
    def of(cls, n_items: int, metric_rows: list[dict[str, Any]]) -> DecayOutcome:
        wanted = {
            "share_unparsed_answers": "unparsed",
            "share_abstain_answers": "abstain",
            "share_hedged_answers": "hedged",
            "share_uncertain": "uncertain",
        }
        shares = {wanted[r["metric"]]: r["value"] for r in metric_rows if r["metric"] in wanted}
        by_type = {
            r["metric"].removeprefix(UNPARSED_BY_TYPE): r["value"]
            for r in metric_rows
            if r["metric"].startswith(UNPARSED_BY_TYPE)
        }
        return cls(n_items, shares, by_type)

    def line(self, model: str, bench: str, mostly_unparsed: float) -> str:
        shown = ", ".join(f"{name} {100 * (v or 0):.1f}%" for name, v in self.shares.items())
        text = f"decay metrics for {model} on {bench}: {self.n_items} items ({shown})"
        unparsed = self.shares.get("unparsed")
        return mostly_unparsed_warning(model, bench, unparsed, mostly_unparsed, self.unparsed_by_type) or text


def decay_benchmark(
    predictions_path: Path,
    items_path: Path,
    config: DecayConfig,
    seed: int,
    outputs: Paths,
    model: str,
    bench: str,
    scoring: BenchmarkScoring,
    official: PairedOfficial | None = None,
) -> DecayOutcome:
    """Write the metrics, the per-item classes and the vision-indispensable manifest to ``outputs``. ``official``:
    aggregates over groups of items the benchmark's config declares (beside, or instead of, its adapter's)."""
    predictions = read_frame(predictions_path)
    if predictions.is_empty():
        raise DecayError(f"'{predictions_path}' has no predictions")
    upstream = read_provenance(predictions_path)
    adapter = scoring.adapter
    spec = get_benchmark(adapter)
    scores, cluster = (spec.official, spec.cluster) if official is None else paired_official(official)
    official_columns = ["answer", "answers", "options", "metadata"] if scores is not None else []
    items = read_frame(items_path, columns=["item_id", "image_keys", *official_columns])
    groups = {r["item_id"]: image_group(r["image_keys"]) for r in items.iter_rows(named=True)}
    grid = build_grid(predictions, (config.blur_family, 0), groups)
    metric_rows, item_rows = decay_metrics(grid, config, seed)
    metric_rows += official_rows(predictions, items, scores, cluster, config.bootstrap, config.confidence, seed)
    record = provenance(
        "decay",
        {"decay": config, "seed": seed, "scoring": scoring, "official": official},
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
        "classes": list(VISION_CLASSES),
        "class_basis": "margin where the first generated token is an option label, identity otherwise; "
        "uncertain items (clean margin below the threshold) are left out",
        "margin_threshold": config.margin_threshold,
        "item_ids": [r["item_id"] for r in item_rows if r["vision_indispensable"]],
    }
    with atomic_output(outputs["manifest"]) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    write_table([identity | r for r in metric_rows], DECAY_METRICS_SCHEMA, record, outputs["metrics"])
    return DecayOutcome.of(len(item_rows), metric_rows)


def run(config: DecaySlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    outcome = decay_benchmark(
        inputs["predictions"],
        inputs["item_table"],
        config.decay,
        config.seed,
        outputs,
        job.model,
        job.bench,
        config.scoring,
        config.official,
    )
    return outcome.line(job.model, job.bench, config.decay.mostly_unparsed)
