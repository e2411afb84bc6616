"""The lens stage: the answer through depth, and how much the answer looks at the image (docs/method.md §6).

It reads the extract stage's store, so it costs no forward pass: the last prompt token's residual state at every
point (``LAYER_CONVENTION``) and condition, and the attention arrays extract recorded in the same pass.

**Logit lens.** A point's state through the final norm and the unembedding, restricted to the item's option
tokens (each label's spellings summed, then normalised over the labels): log P(option) at that depth. The last
point is the model's own answer.

**Tuned lens.** The plain logit lens is unstable in early and middle layers (the residual basis drifts with
depth). Here each point below the last gets one affine translator, fitted by ridge regression from the normed
state to the final normed state on the condition ``lens.fit_level`` (clean), cross-fitted over folds grouped by
source image: an item's translator never saw that item (or its image's other questions), and the translator
fitted on the clean condition reads every other condition too. Only the option rows of the unembedding are ever
multiplied, so a 7B model's translators are never materialised (dual form, ``n x n`` per fold).

Per item, condition, lens and point: the top option, the margins of gold and of the final answer over the best
other option, and gold against the item's prior answer (``probe.prior_field``) where known and different. Per
condition and lens: where the answer emerges (the first point from which the final answer stays on top) and the
share of prior-differs items where a visually supported (gold) answer led at some point before the prior became
the final answer. Attention: the last prompt token's mass on the image tokens (attention sinks apart) per decoder
layer, and the sinks themselves, named per item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from blindspot.config import LensConfig
from blindspot.contracts.conditions import parse_condition_key
from blindspot.contracts.tables import LENS_ITEMS_SCHEMA, LENS_SCHEMA, SINKS_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.models.inference import option_token_ids
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.replay import output_head
from blindspot.prompts import option_labels
from blindspot.stages.slices import LensSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.statistics import ClusterBootstrap, cluster_ids, grouped_folds
from blindspot.store.hidden import HiddenStore
from blindspot.store.provenance import provenance
from blindspot.store.tables import read_frame, write_table


class LensError(BlindspotError):
    """The lens job cannot run as configured (one line)."""


# ------------------------------------------------------------------------------------------------ items


@dataclass(frozen=True)
class LensItems:
    """The store's items with a closed answer space, in store order."""

    rows: np.ndarray
    """Their rows in the store."""
    item_ids: list[str]
    groups: list[str]
    labels: list[tuple[str, ...]]
    gold: list[str]
    prior: list[str | None]
    """The prior answer as an option label, where the benchmark names one."""


def as_label(value: Any, labels: tuple[str, ...], options: list[str] | None) -> str | None:
    """A prior answer as one of the item's labels: the label itself, or an option's text (case-insensitive)."""
    if value is None:
        return None
    text = str(value).strip()
    for label in labels:
        if text.casefold() == label.casefold():
            return label
    for label, option in zip(labels, options or [], strict=False):
        if text.casefold() == str(option).strip().casefold():
            return label
    return None


def lens_items(store: HiddenStore, items_path: Path, prior_field: str | None) -> tuple[LensItems, int]:
    """The items with option labels, and how many open-answer items were left out."""
    by_id = {r["item_id"]: r for r in read_frame(items_path).iter_rows(named=True)}
    rows, ids, groups, labels, gold, prior = [], [], [], [], [], []
    for row, (item_id, group) in enumerate(zip(store.item_ids, store.groups, strict=True)):
        item = by_id[item_id]
        found = option_labels(item["answer_type"], item["options"])
        if not found or item["answer"] not in found:
            continue
        meta = json.loads(item["metadata"]) if prior_field else {}
        rows.append(row)
        ids.append(item_id)
        groups.append(group)
        labels.append(tuple(found))
        gold.append(item["answer"])
        prior.append(as_label(meta.get(prior_field), tuple(found), item["options"]) if prior_field else None)
    return LensItems(np.array(rows, dtype=int), ids, groups, labels, gold, prior), len(store.item_ids) - len(rows)


# ------------------------------------------------------------------------------------------------ readout


class Readout:
    """The final norm and the unembedding's option rows: states to option log-probabilities."""

    def __init__(self, loaded: LoadedModel, labels: list[tuple[str, ...]]) -> None:
        self.norm = loaded.final_norm
        head = output_head(loaded)
        self.spaces = sorted(set(labels))
        ids = {space: option_token_ids(loaded.tokenizer, space) for space in self.spaces}
        self.tokens = sorted({t for space in ids.values() for token_ids in space.values() for t in token_ids})
        where = {t: k for k, t in enumerate(self.tokens)}
        self.groups = {space: [[where[t] for t in ids[space][label]] for label in space] for space in self.spaces}
        full: torch.Tensor = head.weight  # type: ignore[assignment]
        weight = full[self.tokens].detach().float()
        bias = getattr(head, "bias", None)
        self.weight = weight  # (tokens, hidden)
        self.bias = bias[self.tokens].detach().float() if bias is not None else torch.zeros(len(self.tokens))
        self.device = weight.device

    @torch.inference_mode()
    def normed(self, states: Float[np.ndarray, "n hidden"], last: bool) -> Float[torch.Tensor, "n hidden"]:
        """States through the final norm (the last point is stored after it already)."""
        x = torch.as_tensor(states, device=self.device)
        if last:
            return x.float()
        return self.norm(x.to(next(self.norm.parameters()).dtype)).float()

    def token_logits(self, normed: Float[torch.Tensor, "n hidden"]) -> Float[torch.Tensor, "n tokens"]:
        return normed @ self.weight.T.to(normed.device) + self.bias.to(normed.device)

    def option_logprobs(self, token_logits: torch.Tensor, space: tuple[str, ...]) -> Float[np.ndarray, "n k"]:
        """Each label's spellings summed, then log-softmax over the labels."""
        per_label = torch.stack([torch.logsumexp(token_logits[:, g], dim=-1) for g in self.groups[space]], dim=-1)
        return torch.log_softmax(per_label, dim=-1).cpu().numpy()


def fit_translators(
    x: Float[torch.Tensor, "n hidden"], y: Float[torch.Tensor, "n hidden"], readout: Readout, ridge: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tuned lens of one point, in the option rows only: ``token_logits(x') = x' W^T + (x' - mx) Q + c``, the
    ridge regression of the residual ``y - x`` on ``x`` (dual form; penalty ``ridge`` x the mean squared norm of
    the centred states). Returns (mx, Q, c)."""
    xd, yd = x.double(), y.double()
    mx = xd.mean(0)
    xc = xd - mx
    r = yd - xd
    mr = r.mean(0)
    rc = r - mr
    kernel = xc @ xc.T
    penalty = ridge * float(kernel.diagonal().mean()) + 1e-12
    weight = readout.weight.to(xd.device).double()
    alpha = torch.linalg.solve(kernel + penalty * torch.eye(len(xd), dtype=xd.dtype, device=xd.device), rc @ weight.T)
    q = xc.T @ alpha  # (hidden, tokens)
    c = mr @ weight.T
    return mx.float(), q.float(), c.float()


# ------------------------------------------------------------------------------------------------ measures


def item_measures(lp: Float[np.ndarray, "points k"], labels: tuple[str, ...], gold: str, prior: str | None) -> dict:
    """Per point: the top option and the margins (module docstring); per item: emergence and overtaking."""
    k_gold = labels.index(gold)
    top = lp.argmax(-1)
    final = int(top[-1])

    def margin(k: int) -> np.ndarray:
        others = np.delete(lp, k, axis=-1)
        return lp[:, k] - others.max(-1)

    stays = top == final
    emergence = len(top) - int(np.argmin(stays[::-1])) if not stays.all() else 0
    k_prior = labels.index(prior) if prior is not None and prior != gold else None
    overtake = None
    if k_prior is not None and final == k_prior:
        led = np.nonzero(top[:-1] == k_gold)[0]
        if led.size:
            after = np.nonzero((top == k_prior) & (np.arange(len(top)) > led[-1]))[0]
            overtake = int(after[0]) if after.size else None
    return {
        "top": [labels[t] for t in top],
        "final": labels[final],
        "margin_gold": margin(k_gold),
        "margin_final": margin(final),
        "margin_gold_prior": lp[:, k_gold] - lp[:, k_prior] if k_prior is not None else None,
        "emergence": emergence,
        "overtaken": (overtake is not None) if k_prior is not None else None,
        "overtake_layer": overtake,
    }


NO_PRIOR = "no item has a known prior answer that differs from gold"


class Summary:
    """The long summary table: means with cluster-bootstrap intervals."""

    def __init__(self, groups: list[str], config: LensConfig, seed: int) -> None:
        self.boot = ClusterBootstrap(cluster_ids(groups), config.bootstrap, config.confidence, seed)
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        at: tuple[str, str | None, int],
        measure: str,
        values: np.ndarray,
        mask: np.ndarray,
        *,
        proportion: bool = False,
        note: str | None = None,
    ) -> None:
        """One measure at ``at`` = (level, lens, layer): the mean over the masked items."""
        level, lens, layer = at
        estimate = self.boot.mean(np.nan_to_num(values.astype(float)), mask, proportion=proportion)
        self.rows.append(
            {
                "level": level,
                "lens": lens,
                "layer": layer,
                "measure": measure,
                "value": estimate.value,
                "value_ci_low": estimate.low,
                "value_ci_high": estimate.high,
                "n": estimate.n,
                "note": note if estimate.value is None else None,
            }
        )


Translators = dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def fit_tuned(
    features: np.ndarray, levels: list[str], items: LensItems, readout: Readout, settings: LensConfig, seed: int
) -> tuple[Translators, np.ndarray, str | None]:
    """Per (point, fold) translator, fitted on the other folds' items at ``lens.fit_level``; the fold of every
    item; or why the tuned lens could not be fitted."""
    fit = str(parse_condition_key(settings.fit_level))
    folds = np.zeros(len(items.item_ids), dtype=int)
    if fit not in levels:
        return {}, folds, f"tuned lens not fitted: lens.fit_level {fit} is not among the stored levels {levels}"
    if len(set(items.groups)) < settings.folds:
        return {}, folds, f"tuned lens not fitted: lens.folds={settings.folds} needs as many source images"
    folds = grouped_folds(np.array(items.groups), settings.folds, seed, key="lens.folds")
    at = levels.index(fit)
    target = readout.normed(features[:, at, -1], last=True)
    translators: Translators = {}
    for point in range(features.shape[2] - 1):
        x = readout.normed(features[:, at, point], last=False)
        for fold in range(settings.folds):
            train = torch.as_tensor(folds != fold, device=x.device)
            translators[(point, fold)] = fit_translators(x[train], target[train], readout, settings.ridge)
    return translators, folds, None


def read_level(
    features: Float[np.ndarray, "n points hidden"],
    items: LensItems,
    readout: Readout,
    translators: Translators | None,
    folds: np.ndarray,
) -> list[dict[str, Any]]:
    """Every item's measures at one condition, through the logit lens (``translators`` None) or the tuned one
    (each item read by the translators of the folds that left it out)."""
    n_points = features.shape[1]
    by_point = []
    for point in range(n_points):
        last = point == n_points - 1
        x = readout.normed(features[:, point], last=last)
        logits = readout.token_logits(x)
        if translators is not None and not last:
            for fold in np.unique(folds):
                mx, q, c = translators[(point, int(fold))]
                rows = torch.as_tensor(folds == fold, device=x.device)
                logits[rows] = logits[rows] + (x[rows] - mx) @ q + c
        by_point.append(logits)
    stacked = torch.stack(by_point, dim=1)  # (n, points, tokens)
    return [
        item_measures(readout.option_logprobs(stacked[i], space), space, items.gold[i], items.prior[i])
        for i, space in enumerate(items.labels)
    ]


def item_rows(level: str, lens: str, items: LensItems, measures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i, m in enumerate(measures):
        versus = m["margin_gold_prior"]
        for point, top in enumerate(m["top"]):
            rows.append(
                {
                    "item_id": items.item_ids[i],
                    "level": level,
                    "lens": lens,
                    "layer": point,
                    "gold": items.gold[i],
                    "prior": items.prior[i],
                    "final": m["final"],
                    "top": top,
                    "margin_gold": float(m["margin_gold"][point]),
                    "margin_final": float(m["margin_final"][point]),
                    "margin_gold_prior": None if versus is None else float(versus[point]),
                }
            )
    return rows


def summarise(summary: Summary, level: str, lens: str, items: LensItems, measures: list[dict[str, Any]]) -> None:
    """Per point: mean margins and top-option shares; per condition: emergence and overtaking."""
    everyone = np.ones(len(measures), dtype=bool)
    differs = np.array([p is not None and p != g for p, g in zip(items.prior, items.gold, strict=True)])
    finals = [m["final"] for m in measures]
    for point in range(len(measures[0]["top"])):
        at = (level, lens, point)
        for name in ("margin_gold", "margin_final"):
            summary.add(at, name, np.array([m[name][point] for m in measures]), everyone)
        versus = [m["margin_gold_prior"][point] if d else 0.0 for m, d in zip(measures, differs, strict=True)]
        summary.add(at, "margin_gold_prior", np.array(versus), differs, note=NO_PRIOR)
        tops = [m["top"][point] for m in measures]
        for name, wanted, mask in (
            ("top_gold", items.gold, everyone),
            ("top_final", finals, everyone),
            ("top_prior", items.prior, differs),
        ):
            hits = np.array([t == w for t, w in zip(tops, wanted, strict=True)], dtype=float)
            summary.add(at, name, hits, mask, proportion=True, note=NO_PRIOR)
    at = (level, lens, -1)
    summary.add(at, "emergence", np.array([m["emergence"] for m in measures]), everyone)
    overtaken = np.array([bool(m["overtaken"]) for m in measures])
    summary.add(at, "overtaken", overtaken.astype(float), differs, proportion=True, note=NO_PRIOR)
    where = np.array([m["overtake_layer"] or 0 for m in measures])
    summary.add(at, "overtake_layer", where, overtaken, note="no item's gold answer was overtaken by its prior")


def attention_rows(store: HiddenStore, items: LensItems, summary: Summary, notes: list[str]) -> list[dict[str, Any]]:
    """The attention measures into ``summary`` (mean over heads, then items); the named sinks as rows."""
    if not store.has_attention:
        notes.append(f"attention not read: {store.attrs.get('attention') or 'extract.attention was off'}")
        return []
    arrays = store.attention()
    everyone = np.ones(len(items.item_ids), dtype=bool)
    image = arrays["attention_image"][items.rows].mean(-1)  # (n, levels, decoder layers)
    sink = arrays["attention_sink"][items.rows].mean(-1)
    tokens, ratios = arrays["sink_token"][items.rows], arrays["sink_ratio"][items.rows]
    rows = []
    for li, level in enumerate(store.levels):
        for layer in range(image.shape[2]):
            summary.add((level, None, layer), "attention_image", image[:, li, layer], everyone, proportion=True)
            summary.add((level, None, layer), "attention_sink", sink[:, li, layer], everyone, proportion=True)
        summary.add((level, None, -1), "sink_tokens", (tokens[:, li] >= 0).sum(-1).astype(float), everyone)
        for i, item_id in enumerate(items.item_ids):
            for token, ratio in zip(tokens[i, li], ratios[i, li], strict=True):
                if token >= 0:
                    rows.append({"item_id": item_id, "level": level, "image_token": int(token), "norm_ratio": ratio})
    return rows


# ------------------------------------------------------------------------------------------------ the stage


def lens_benchmark(
    model_name: str,
    bench: str,
    config: LensSlice,
    hidden_path: Path,
    items_path: Path,
    outputs: Paths,
    *,
    loaded: LoadedModel | None = None,
) -> str:
    """Write the per-item lens rows, the summary and the named sinks; return the console line."""
    store = HiddenStore(hidden_path)
    settings = config.lens
    items, n_open = lens_items(store, items_path, config.prior_field)
    if not items.item_ids:
        raise LensError(f"'{bench}' has no item with option labels to read through the lens", key="lens.enabled")
    loaded = loaded or load_model(config.model)
    readout = Readout(loaded, items.labels)
    features = store.read("last_token")[items.rows]  # (n, levels, points, hidden)
    notes = [f"{n_open} open-answer items left out (no option labels)"] if n_open else []
    translators, folds, unfitted = fit_tuned(features, store.levels, items, readout, settings, config.seed)
    lenses: dict[str, Translators | None] = {"logit": None} | ({} if unfitted else {"tuned": translators})
    notes += [unfitted] if unfitted else []

    identity = {"model": model_name, "benchmark": bench}
    rows: list[dict[str, Any]] = []
    summary = Summary(items.groups, settings, config.seed)
    for li, level in enumerate(store.levels):
        for lens, fitted in lenses.items():
            measures = read_level(features[:, li], items, readout, fitted, folds)
            rows += item_rows(level, lens, items, measures)
            summarise(summary, level, lens, items, measures)
    sinks = attention_rows(store, items, summary, notes)
    note = "; ".join(notes) or None
    for row in summary.rows:  # a job-wide note (items left out, a lens not fitted) on every row, as patch does
        row["note"] = "; ".join(n for n in (row["note"], note) if n) or None
    hidden = store.provenance.get("config_hash")
    record = provenance(
        "lens", config, model_name=model_name, benchmark=bench, model=loaded.provenance(), hidden=hidden
    )
    write_table([identity | r for r in rows], LENS_ITEMS_SCHEMA, record, outputs["per_item"])
    write_table([identity | r for r in summary.rows], LENS_SCHEMA, record, outputs["lens"])
    write_table([identity | r for r in sinks], SINKS_SCHEMA, record, outputs["sinks"])
    line = f"lens {model_name} on {bench}: {len(items.item_ids)} items x {len(store.levels)} levels x "
    line += f"{features.shape[2]} points, {' and '.join(lenses)} lens"
    return line + (f" ({note})" if note else "")


def run(config: LensSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    return lens_benchmark(job.model, job.bench, config, inputs["hidden"], inputs["item_table"], outputs)
