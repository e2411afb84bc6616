"""The patch stage: activation patching between two rendered conditions of the same item (docs/method.md §3).

For each item with option labels, a *source* run and a *target* run of the same prompt at two rendered conditions
(default: the clean image into the most-blurred one, and the reverse). At each layer index of
``LAYER_CONVENTION`` (0: the embedding output with image features merged in; i: the output of decoder layer i-1;
L: the last layer's output after the final norm), the target run's residual stream is replaced by the source run's
at a set of positions (``image`` tokens, the ``last`` prompt token, or ``all``) and the rest of the model runs on.

Measured per item, layer and position set, from the option log-probs at the last prompt position:

- ``ld``: log P(gold) - log P(r), where r, the rival, is the target run's top option, or the source run's where the
  target already answers gold (then the source's ld is negative and the target's positive); 0 where both answer
  gold;
- ``restored``: how far the patch moves the target run toward the source run's answer, on the logit difference
  d = log P(s) - log P(t) between the source's answer s and the target's t: (d_patched - d_target) /
  (d_source - d_target), defined where the two runs give different answers (elsewhere the denominator can be
  arbitrarily small and the ratio meaningless). 0 is the target, 1 the source, whether or not the source is right;
  where the source answers gold, d is the ld above;
- ``flipped``: the patched run's top option is the source run's (not gold), on items whose source and target
  answers differ.

**Replay.** The default method runs each condition once with every decoder layer's inputs recorded (hidden state,
rotary embeddings, attention mask), then for each layer l replays only layers l..L-1, the final norm and the
output head from the patched state, instead of a whole forward pass (vision tower included) per layer. The first
batch checks that an unpatched replay reproduces the model's own logits; a model that does something between its
decoder layers fails that check with a one-line error naming ``patch.method: full_forward``, which patches through
a hook in one whole forward pass per layer.

Outputs: ``items`` (one row per item, pair, position set and layer) and ``patches`` (per pair, position set and
layer: the means with cluster-bootstrap intervals). Resumable by shard of items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from jaxtyping import Bool, Float
from tqdm import tqdm

from blindspot.contracts.conditions import Condition, resolve_condition_key
from blindspot.contracts.items import image_group
from blindspot.contracts.parts import WHOLE, Part, part_items
from blindspot.contracts.tables import PATCH_ITEMS_SCHEMA, PATCHES_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.models.answering import closed_items
from blindspot.models.batching import BatchSizer
from blindspot.models.hook_points import replacing
from blindspot.models.inference import Request, encode_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel
from blindspot.models.replay import RecordedRun, check_replay_matches, option_logprobs, record_run, replay, top
from blindspot.prompts import option_labels
from blindspot.stages.slices import PatchSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.statistics import ClusterBootstrap, cluster_ids
from blindspot.store.parts import gather_tables, part_record
from blindspot.store.tables import read_frame, write_table

Position = Literal["image", "last", "all"]


class PatchError(BlindspotError):
    """The patch job cannot run as configured (one line)."""


# ------------------------------------------------------------------------------------------------ runs


@torch.inference_mode()
def patched_forward(
    loaded: LoadedModel, inputs: dict[str, torch.Tensor], index: int, hidden: torch.Tensor
) -> Float[torch.Tensor, "b v"]:
    """The same as :func:`replay`, by a whole forward pass with the state replaced by a hook."""
    with replacing(loaded.layers, loaded.final_norm, index, hidden):
        return loaded.model(**inputs, use_cache=False, logits_to_keep=1).logits[:, -1].float()


def position_mask(loaded: LoadedModel, input_ids: torch.Tensor, position: Position) -> Bool[torch.Tensor, "batch seq"]:
    if position == "image":
        return loaded.family.image_positions(loaded.model, input_ids)
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    if position == "last":
        mask[:, -1] = True  # left padding: the last prompt token is at -1
    else:
        mask[:] = True
    return mask


def patch_state(
    target: torch.Tensor, source: torch.Tensor, mask: Bool[torch.Tensor, "batch seq"]
) -> Float[torch.Tensor, "batch seq hidden"]:
    """The target's state with the source's at the masked positions."""
    return torch.where(mask.unsqueeze(-1).to(target.device), source, target)


# ------------------------------------------------------------------------------------------------ measures


def item_measures(gold: str, source: dict[str, float], target: dict[str, float], patched: dict[str, float]) -> dict:
    """The per-item measures of one patch (see the module docstring)."""
    target_top, source_top, patched_top = top(target), top(source), top(patched)
    # gold against the answer that competes with it: the target's, or the source's where the target answers gold
    # (the reverse pair, a blurred source into the clean target: the difference then changes sign on the way)
    rival = target_top if target_top != gold else source_top

    def ld(lp: dict[str, float]) -> float | None:
        return lp[gold] - lp[rival] if gold in lp else None

    def toward_source(lp: dict[str, float]) -> float:
        return lp[source_top] - lp[target_top]

    ld_source, ld_target, ld_patched = ld(source), ld(target), ld(patched)
    restored = None
    spread = toward_source(source) - toward_source(target)
    if source_top != target_top and abs(spread) > 1e-6:
        # from the target's answer to the source's, whichever is right: 0 the target, 1 the source (a source that
        # answers gold makes this the gold logit difference of the hand case)
        restored = (toward_source(patched) - toward_source(target)) / spread
    return {
        "source_answer": source_top,
        "target_answer": target_top,
        "patched_answer": patched_top,
        "ld_source": ld_source,
        "ld_target": ld_target,
        "ld_patched": ld_patched,
        "restored": restored,
        "flipped": patched_top == source_top if source_top != target_top else None,
    }


# ------------------------------------------------------------------------------------------------ the sweep


def parse_pairs(job: ModelJob, pairs: list[str]) -> list[tuple[Condition, Condition]]:
    out = []
    for pair in pairs:
        source, _, target = pair.partition("->")
        try:
            out.append(tuple(resolve_condition_key(k.strip(), job.store.conditions) for k in (source, target)))
        except KeyError as error:
            raise PatchError(f"{error.args[0]} (not rendered)", key="patch.pairs") from None
    return out  # type: ignore[return-value]


@dataclass
class _ReplayCheck:
    """Whether the replay's equality with a full forward pass is still to be checked (on the job's first batch)."""

    pending: bool


def _patch_piece(
    job: ModelJob,
    pairs: list[tuple[Condition, Condition]],
    positions: list[Position],
    method: Literal["replay", "full_forward"],
    bar: tqdm,
    replay: _ReplayCheck,
    batch: list[int],
) -> list[dict[str, Any]]:
    rows = patch_batch(job, batch, pairs, positions, method, check_replay=replay.pending)
    replay.pending = False
    bar.update(len(batch))
    return rows


def patch_batch(
    job: ModelJob,
    items: list[int],
    pairs: list[tuple[Condition, Condition]],
    positions: list[Position],
    method: Literal["replay", "full_forward"],
    check_replay: bool = False,
) -> list[dict[str, Any]]:
    """Every (pair, position set, layer) patch of a batch of items; one row each per item."""
    loaded = job.loaded
    labels = [tuple(option_labels(job.items[i]["answer_type"], job.items[i]["options"]) or ()) for i in items]
    conditions = list(dict.fromkeys(c for pair in pairs for c in pair))
    levels = {i: job.levels(i) for i in items}
    runs: dict[Condition, RecordedRun] = {}
    inputs_of: dict[Condition, dict[str, torch.Tensor]] = {}
    for condition in conditions:
        index = job.store.condition_index(condition.family, condition.level)
        requests = [
            Request(job.prompts.get(i, True), tuple(job.images(i, index, levels[i])), labels[k])
            for k, i in enumerate(items)
        ]
        inputs_of[condition] = encode_batch(loaded, requests)
        runs[condition] = record_run(loaded, inputs_of[condition])
    if check_replay:
        check_replay_matches(loaded, runs[conditions[0]], key="patch.method")
    lps = {c: option_logprobs(loaded, run.logits, labels) for c, run in runs.items()}
    rows = []
    n_indices = len(loaded.layers) + 1
    for source, target in pairs:
        s, t = runs[source], runs[target]
        if s.input_ids.shape != t.input_ids.shape or not torch.equal(s.input_ids, t.input_ids):
            differs = (s.input_ids != t.input_ids).any(-1) if s.input_ids.shape == t.input_ids.shape else None
            row = int(differs.nonzero()[0, 0]) if differs is not None and differs.any() else 0
            raise PatchError(
                f"item '{job.items[items[row]]['item_id']}': {source.key} and {target.key} give different token "
                "sequences (image sizes differ between the conditions?), so positions do not line up"
            )
        for position in positions:
            mask = position_mask(loaded, t.input_ids, position)
            for layer in range(n_indices):
                hidden = patch_state(t.states[layer], s.states[layer], mask)
                if method == "replay":
                    logits = replay(loaded, t, layer, hidden)
                else:
                    logits = patched_forward(loaded, inputs_of[target], layer, hidden)
                patched = option_logprobs(loaded, logits, labels)
                for k, i in enumerate(items):
                    item = job.items[i]
                    rows.append(
                        {
                            "item_id": item["item_id"],
                            "source": source.key,
                            "target": target.key,
                            "position": position,
                            "layer": layer,
                            "gold": item["answer"],
                            **item_measures(item["answer"], lps[source][k], lps[target][k], patched[k]),
                        }
                    )
    return rows


def _column(rows: pl.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A nullable column as (values with nulls as 0, where defined)."""
    values = np.array([np.nan if v is None else float(v) for v in rows[name].to_list()])
    return np.nan_to_num(values), np.isfinite(values)


def patch_metrics(rows: pl.DataFrame, items: list[dict[str, Any]], config: Any, seed: int) -> list[dict[str, Any]]:
    """Per (pair, position set, layer): mean ld_patched, restored fraction and flip rate, with intervals."""
    order = {r["item_id"]: k for k, r in enumerate(items)}
    groups = [image_group(r["image_keys"]) for r in items]
    out = []
    boots: dict[tuple[str, ...], ClusterBootstrap] = {}  # every cell usually holds the same items: resample once
    keys = rows.select("source", "target", "position", "layer").unique(maintain_order=True).rows()
    for source, target, position, layer in keys:
        part = rows.filter(
            (pl.col("source") == source)
            & (pl.col("target") == target)
            & (pl.col("position") == position)
            & (pl.col("layer") == layer)
        )
        ids = part["item_id"].to_list()
        if tuple(ids) not in boots:
            clusters = cluster_ids([groups[order[i]] for i in ids])
            boots[tuple(ids)] = ClusterBootstrap(clusters, config.bootstrap, config.confidence, seed)
        boot = boots[tuple(ids)]

        ld, ld_ok = _column(part, "ld_patched")
        restored, restorable = _column(part, "restored")
        flipped, flippable = _column(part, "flipped")
        e_ld = boot.mean(ld, ld_ok, proportion=False)
        e_restored = boot.mean(restored, restorable, proportion=False)
        e_flip = boot.mean(flipped, flippable)
        out.append(
            {
                "source": source,
                "target": target,
                "position": position,
                "layer": layer,
                "n": len(ids),
                "ld": e_ld.value,
                "ld_ci_low": e_ld.low,
                "ld_ci_high": e_ld.high,
                "restored": e_restored.value,
                "restored_ci_low": e_restored.low,
                "restored_ci_high": e_restored.high,
                "n_restorable": e_restored.n,
                "flip_rate": e_flip.value,
                "flip_rate_ci_low": e_flip.low,
                "flip_rate_ci_high": e_flip.high,
                "n_flippable": e_flip.n,
            }
        )
    return out


def patch_benchmark(
    model_name: str,
    bench: str,
    config: PatchSlice,
    items_path: Path,
    render_path: Path,
    outputs: Paths,
    *,
    loaded: LoadedModel | None = None,
    progress: bool = True,
    part: Part = WHOLE,
) -> tuple[list[dict[str, Any]], str | None]:
    """Run the sweep (on ``part`` of the items); write the per-item rows and the per-layer table. Returns the
    table's rows and a note on the items left out (None when none were)."""
    job = ModelJob.open(
        "patch",
        model_name,
        bench,
        config.model,
        config.prompt,
        config,
        items_path,
        render_path,
        outputs["patches"],
        scoring=config.scoring,
        loaded=loaded,
        progress=progress,
    )
    settings = config.patch
    pairs = parse_pairs(job, settings.pairs)
    chosen, note = closed_items(job, "patch", settings.max_items)
    identity = {"model": model_name, "benchmark": bench}
    groups = [image_group(job.items[i]["image_keys"]) for i in chosen]
    shards = [[chosen[p] for p in block] for block in part_items(groups, settings.shard_size, part)]
    record = part_record(job.record | {"left_out": note}, part)
    bar = job.bar(sum(map(len, shards)), "item")
    sizer = BatchSizer(config.model.batch_size, job.loaded.device.type)
    piece = partial(_patch_piece, job, pairs, list(settings.positions), settings.method, bar,
                    _ReplayCheck(settings.method == "replay"))  # fmt: skip
    table = job.run_shards(
        "shard",
        shards,
        lambda _, shard: [identity | r for r in sizer.run(shard, piece)],
        PATCH_ITEMS_SCHEMA,
        rows=lambda _: None,  # rows per item vary with its option labels
        done=lambda shard: bar.update(len(shard)),
    )
    bar.close()
    sizer.report(f"patch {model_name}/{bench}")
    metrics = write_patches(table, job.items, config, record, identity, outputs)
    job.finish()
    return metrics, note


def write_patches(
    table: pa.Table,
    items: list[dict[str, Any]],
    config: PatchSlice,
    record: dict[str, Any],
    identity: dict[str, str],
    outputs: Paths,
) -> list[dict[str, Any]]:
    """The per-item rows and the per-layer table computed from them (the note on left-out items is the record's
    ``left_out``); returns the per-layer rows."""
    metrics = patch_metrics(pl.from_arrow(table), items, config.patch, config.seed)  # type: ignore[arg-type]
    write_table(table, PATCH_ITEMS_SCHEMA, record, outputs["per_item"])
    rows = [identity | r | {"method": config.patch.method, "note": record.get("left_out")} for r in metrics]
    write_table(rows, PATCHES_SCHEMA, record, outputs["patches"])
    return metrics


def format_patches(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'pair':<22} {'position':<8} {'layer':>5} {'restored':>9} {'flip':>6} {'ld':>8}"]
    for r in rows:

        def cell(v: float | None, width: int) -> str:
            return f"{v:>{width}.3f}" if v is not None else f"{'-':>{width}}"

        lines.append(
            f"{r['source'] + '->' + r['target']:<22} {r['position']:<8} {r['layer']:>5} "
            f"{cell(r['restored'], 9)} {cell(r['flip_rate'], 6)} {cell(r['ld'], 8)}"
        )
    return "\n".join(lines)


def run(config: PatchSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    rows, note = patch_benchmark(
        job.model, job.bench, config, inputs["item_table"], inputs["render"], outputs, progress=job.progress,
        part=job.part,
    )  # fmt: skip
    print(format_patches(rows))
    n_items = max((r["n"] for r in rows), default=0)
    line = f"patched {job.model} on {job.bench}{job.part_suffix}: {n_items} items, {len(rows)} (pair, position, "
    return line + "layer) cells" + (f" ({note})" if note else "")


def gather(config: PatchSlice, inputs: Paths, parts: Sequence[Paths], outputs: Paths, job: JobContext) -> str:
    """The parts' per-item rows in part order, and the per-layer table computed from all of them: the outputs the
    unsplit job writes."""
    table, record = gather_tables([paths["per_item"] for paths in parts], PATCH_ITEMS_SCHEMA)
    items = read_frame(inputs["item_table"]).to_dicts()
    rows = write_patches(table, items, config, record, {"model": job.model, "benchmark": job.bench}, outputs)
    return f"gathered {len(parts)} parts of patch {job.model} on {job.bench}: {len(rows)} cells"


__all__ = ["item_measures", "patch_benchmark", "patched_forward", "run"]
