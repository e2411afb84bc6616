"""The knockout stage: where the image flows into the answer (docs/method.md §7).

For each item with option labels and each configured condition, one recorded forward pass; then, for each window
of ``w`` consecutive decoder layers (every start, each size in ``knockout.windows``) and each position set, the
attention from those positions to the image tokens is blocked in the window's layers
(:mod:`blindspot.models.attention`) and the model is replayed from the window's first layer
(:mod:`blindspot.models.replay`; layers below the window are unchanged). Position sets: ``last`` (the answer
position, the last prompt token), ``question`` (it and the question's own tokens), ``text`` (every text token).

Per item: the gold margin (log P(gold) minus the best other option, over the full vocabulary as predict reads
it) with and without the knockout, and whether the top option flipped. Per condition, position set and window:
the mean change of the margin and the flip rate with cluster-bootstrap intervals. One more window per position
set blocks every layer: the image's whole effect through that position set; there the answers are compared with
the no-image prompt's (``agree_no_image``), which they need not equal: the text tokens keep the positions and the
image placeholder tokens of the prompt with the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from jaxtyping import Bool

from blindspot.config import KnockoutConfig
from blindspot.contracts.answers import option_margin
from blindspot.contracts.conditions import Condition, resolve_condition_key
from blindspot.contracts.items import image_group
from blindspot.contracts.tables import KNOCKOUT_ITEMS_SCHEMA, KNOCKOUT_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.models.answering import closed_items
from blindspot.models.attention import Knockout, attention_control, check_attention
from blindspot.models.batching import BatchSizer
from blindspot.models.inference import Request, encode_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel
from blindspot.models.prompts import question_mask
from blindspot.models.replay import check_replay_matches, option_logprobs, record_run, replay, top
from blindspot.prompts import option_labels
from blindspot.stages.slices import KnockoutSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.statistics import ClusterBootstrap, cluster_ids
from blindspot.store.tables import write_table

NOT_NO_IMAGE = (
    "blocking every layer removes the image's content, not its tokens: the text keeps the positions and image "
    "placeholders of the prompt with the image, so the answers need not equal the no-image prompt's"
)


class KnockoutError(BlindspotError):
    """The knockout job cannot run as configured (one line)."""


@dataclass(frozen=True)
class Window:
    start: int
    size: int

    @property
    def layers(self) -> frozenset[int]:
        return frozenset(range(self.start, self.start + self.size))


def windows(sizes: list[int], n_layers: int) -> list[Window]:
    """Every window of each size over the decoder layers (a size beyond them is skipped), then every layer."""
    out = [Window(start, size) for size in sizes if size < n_layers for start in range(n_layers - size + 1)]
    return [*out, Window(0, n_layers)]


def gold_margin(lp: dict[str, float], gold: str) -> float:
    """log P(gold) minus the best other option's (:func:`option_margin`; a closed item's gold is one of at least
    two options, so it is always defined here)."""
    margin = option_margin(lp, gold)
    if margin is None:
        raise KnockoutError(f"gold '{gold}' is not one of the options {sorted(lp)}", key="knockout.models")
    return margin


def query_positions(
    loaded: LoadedModel, inputs: dict[str, torch.Tensor], image: torch.Tensor, questions: list[str], position: str
) -> Bool[torch.Tensor, "batch seq"]:
    """The positions whose access to the image is blocked: the last prompt token, with the question's own
    tokens, or every text token (never padding)."""
    text = inputs["attention_mask"].bool() & ~image
    if position == "text":
        return text
    mask = torch.zeros_like(text)
    mask[:, -1] = True  # left padding: the last prompt token is at -1
    if position == "question":
        for row, question in enumerate(questions):
            mask[row] |= question_mask(loaded, inputs["input_ids"][row : row + 1], question)[0].to(mask.device)
    return mask & text


def knockout_batch(
    job: ModelJob,
    items: list[int],
    conditions: list[Condition],
    config: KnockoutConfig,
    check: bool = False,
) -> list[dict[str, Any]]:
    """Every (condition, position set, window) knockout of a batch of items; one row each per item."""
    loaded = job.loaded
    labels = [tuple(option_labels(job.items[i]["answer_type"], job.items[i]["options"]) or ()) for i in items]
    questions = [job.items[i]["question"] for i in items]
    gold = [job.items[i]["answer"] for i in items]
    levels = {i: job.levels(i) for i in items}
    spans = windows(config.windows, len(loaded.layers))
    rows = []
    for condition in conditions:
        index = job.store.condition_index(condition.family, condition.level)
        requests = [Request(job.prompts.get(i, True), tuple(job.images(i, index, levels[i])), labels[k])
                    for k, i in enumerate(items)]  # fmt: skip
        inputs = encode_batch(loaded, requests)
        run = record_run(loaded, inputs)
        if check:
            check_replay_matches(loaded, run, key="knockout.models")
            check = False
        plain = option_logprobs(loaded, run.logits, labels)
        image = loaded.family.image_positions(loaded.model, inputs["input_ids"]).to(run.input_ids.device)
        for position in config.positions:
            queries = query_positions(loaded, inputs, image, questions, position)
            for window in spans:
                knock = Knockout(window.layers, queries, image)
                with attention_control(loaded.layers, knockout=knock):
                    logits = replay(loaded, run, window.start, run.states[window.start])
                knocked = option_logprobs(loaded, logits, labels)
                for k, i in enumerate(items):
                    rows.append(
                        {
                            "item_id": job.items[i]["item_id"],
                            "condition": condition.key,
                            "position": position,
                            "window_start": window.start,
                            "window_size": window.size,
                            "gold": gold[k],
                            "answer": top(plain[k]),
                            "knocked_answer": top(knocked[k]),
                            "margin": gold_margin(plain[k], gold[k]),
                            "knocked_margin": gold_margin(knocked[k], gold[k]),
                            "flipped": top(knocked[k]) != top(plain[k]),
                        }
                    )
    return rows


def no_image_answers(job: ModelJob, items: list[int]) -> dict[str, str]:
    """item id -> the no-image prompt's top option (one forward pass per batch of items)."""
    labels = [tuple(option_labels(job.items[i]["answer_type"], job.items[i]["options"]) or ()) for i in items]
    inputs = encode_batch(job.loaded, [Request(job.prompts.get(i, False), (), labels[k]) for k, i in enumerate(items)])
    with torch.inference_mode():
        logits = job.loaded.model(**inputs, use_cache=False, logits_to_keep=1).logits[:, -1].float()
    lps = option_logprobs(job.loaded, logits, labels)
    return {job.items[i]["item_id"]: top(lp) for i, lp in zip(items, lps, strict=True)}


def knockout_metrics(
    rows: pl.DataFrame,
    items: list[dict[str, Any]],
    no_image: dict[str, str],
    config: KnockoutConfig,
    seed: int,
    n_layers: int,
) -> list[dict[str, Any]]:
    """Per (condition, position set, window): mean margin change and flip rate (and, for the window of every layer,
    agreement with the no-image answers), with cluster-bootstrap intervals over source images."""
    groups = {r["item_id"]: image_group(r["image_keys"]) for r in items}
    out = []
    boots: dict[tuple[str, ...], ClusterBootstrap] = {}
    keys = ["condition", "position", "window_start", "window_size"]
    for (condition, position, start, size), part in rows.group_by(keys, maintain_order=True):
        ids = tuple(part["item_id"].to_list())
        if ids not in boots:
            boots[ids] = ClusterBootstrap(cluster_ids([groups[i] for i in ids]), config.bootstrap, config.confidence,
                                          seed)  # fmt: skip
        boot = boots[ids]
        everyone = np.ones(part.height, dtype=bool)
        delta = boot.mean((part["knocked_margin"] - part["margin"]).to_numpy(), everyone, proportion=False)
        flips = boot.mean(part["flipped"].cast(pl.Float64).to_numpy(), everyone)
        row = {"condition": condition, "position": position, "window_start": start, "window_size": size,
               "n": part.height, "delta_margin": delta.value, "delta_margin_ci_low": delta.low,
               "delta_margin_ci_high": delta.high, "flip_rate": flips.value, "flip_rate_ci_low": flips.low,
               "flip_rate_ci_high": flips.high, "agree_no_image": None, "agree_no_image_ci_low": None,
               "agree_no_image_ci_high": None, "note": None}  # fmt: skip
        if size == n_layers and no_image:
            same = np.array([no_image.get(i) == a for i, a in zip(ids, part["knocked_answer"], strict=True)])
            agree = boot.mean(same.astype(float), everyone)
            row |= {"agree_no_image": agree.value, "agree_no_image_ci_low": agree.low,
                    "agree_no_image_ci_high": agree.high, "note": NOT_NO_IMAGE}  # fmt: skip
        out.append(row)
    return out


def left_out_row(condition: str, reason: str) -> dict[str, Any]:
    """The one row of a model whose attention cannot be masked: no window (``window_size`` 0), ``reason`` in
    ``note``."""
    row: dict[str, Any] = {name: None for name in KNOCKOUT_SCHEMA.names if name not in ("model", "benchmark")}
    return row | {"condition": condition, "position": "none", "window_start": -1, "window_size": 0, "n": 0,
                  "note": reason}  # fmt: skip


def knockout_benchmark(
    model_name: str,
    bench: str,
    config: KnockoutSlice,
    items_path: Path,
    render_path: Path,
    outputs: Paths,
    *,
    loaded: LoadedModel | None = None,
    progress: bool = True,
) -> str:
    """Run the sweep; write the per-item rows and the per-window table. Returns the console line."""
    job = ModelJob.open("knockout", model_name, bench, config.model, config.prompt, config, items_path, render_path,
                        outputs["knockout"], scoring=config.scoring, loaded=loaded, progress=progress)  # fmt: skip
    settings = config.knockout
    conditions = []
    for key in settings.conditions:
        try:
            conditions.append(resolve_condition_key(key, job.store.conditions))
        except KeyError as error:
            raise KnockoutError(f"{error.args[0]} (not rendered)", key="knockout.conditions") from None
    chosen, note = closed_items(job, "knockout", settings.max_items)
    first = Request(job.prompts.get(chosen[0], True), tuple(job.images(chosen[0], 0, job.levels(chosen[0]))), None)
    sample = encode_batch(job.loaded, [first])
    with torch.inference_mode():
        unreadable = check_attention(job.loaded.layers, lambda: job.loaded.model(**sample, logits_to_keep=1))
    identity = {"model": model_name, "benchmark": bench}
    if unreadable:  # one row that says so: the report leaves the model out of the section and names why
        reason = f"{model_name} left out: {unreadable} (remove it from knockout.models)"
        write_table([], KNOCKOUT_ITEMS_SCHEMA, job.record, outputs["per_item"])
        write_table([identity | left_out_row(settings.conditions[0], reason)], KNOCKOUT_SCHEMA, job.record,
                    outputs["knockout"])  # fmt: skip
        job.finish()
        return f"knockout on {bench}: {reason}"
    shards = [chosen[s : s + settings.shard_size] for s in range(0, len(chosen), settings.shard_size)]
    bar = job.bar(len(chosen), "item")
    sizer = BatchSizer(config.model.batch_size, job.loaded.device.type)
    pending = {"check": True}

    def piece(batch: list[int]) -> list[dict[str, Any]]:
        rows = knockout_batch(job, batch, conditions, settings, check=pending.pop("check", False))
        bar.update(len(batch))
        return rows

    table = job.run_shards(
        "shard",
        shards,
        lambda _, shard: [identity | r for r in sizer.run(shard, piece)],
        KNOCKOUT_ITEMS_SCHEMA,
        rows=lambda _: None,
        done=lambda shard: bar.update(len(shard)),
    )
    bar.close()
    sizer.report(f"knockout {model_name}/{bench}")
    no_image: dict[str, str] = {}
    for start in range(0, len(chosen), 16):
        no_image |= no_image_answers(job, chosen[start : start + 16])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    metrics = knockout_metrics(frame, job.items, no_image, settings, config.seed, len(job.loaded.layers))
    write_table(table, KNOCKOUT_ITEMS_SCHEMA, job.record, outputs["per_item"])
    rows = [identity | r | ({"note": "; ".join(n for n in (r["note"], note) if n)} if note else {}) for r in metrics]
    write_table(rows, KNOCKOUT_SCHEMA, job.record, outputs["knockout"])
    job.finish()
    n_windows = len(windows(settings.windows, len(job.loaded.layers)))
    line = f"knocked out {model_name} on {bench}: {len(chosen)} items x {len(conditions)} conditions x "
    line += f"{len(settings.positions)} position sets x {n_windows} windows"
    return line + (f" ({note})" if note else "")


def run(config: KnockoutSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    return knockout_benchmark(
        job.model, job.bench, config, inputs["item_table"], inputs["render"], outputs, progress=job.progress
    )


__all__ = ["Window", "gold_margin", "knockout_batch", "knockout_benchmark", "run", "windows"]
