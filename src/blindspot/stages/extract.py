"""The extract step: per-layer residual-stream features to a chunked Zarr store, streamed and resumable.

The store's layout is :mod:`blindspot.store.hidden`'s. Items are processed block by block (about one chunk's worth
of items, the items of one source image together: :func:`blindspot.contracts.parts.item_blocks`); each finished
block is recorded in the partial store, so a killed job restarted skips finished blocks and memory stays flat
however many items there are. The finished store is committed into place. A split job (``shards: N`` for the
benchmark) extracts one part's blocks into a store of its own; :func:`gather` writes their items, in order, into
the store the unsplit job writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool

from blindspot.benchmarks.registry import BenchmarkScoring
from blindspot.config import ExtractConfig, ModelConfig, PromptConfig
from blindspot.contracts.conditions import parse_condition_key, resolve_condition_key
from blindspot.contracts.hidden import (
    FEATURES,
    LAYER_CONVENTION,
    MAX_SINKS,
    ROLE_IMAGE,
    ROLE_PAD,
    ROLE_QUESTION,
    ROLE_TEMPLATE,
)
from blindspot.contracts.items import image_group
from blindspot.contracts.parts import WHOLE, Part, part_items
from blindspot.errors import BlindspotError
from blindspot.models.answering import within_prompt_limit
from blindspot.models.attention import Control, attention_control, check_attention
from blindspot.models.batching import BatchSizer
from blindspot.models.capture import Capture, capture_residual_stream, sinks
from blindspot.models.inference import Request, encode_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel
from blindspot.models.prompts import question_mask
from blindspot.stages.slices import ExtractSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.store.atomic import register_partial
from blindspot.store.hidden import HiddenStoreWriter, gather_stores
from blindspot.store.parts import part_record
from blindspot.store.render import RenderStore


class ExtractError(BlindspotError):
    """The extract job cannot run as configured (one line)."""


def resolve_levels(store: RenderStore, levels: list[str]) -> list[str]:
    """Condition keys; ``blur/-1`` names the most severe level of the blur ladder."""
    out = []
    for key in levels:
        try:
            out.append(resolve_condition_key(key, store.conditions).key)
        except KeyError as error:
            raise ExtractError(f"{error.args[0]} (not rendered)", key="extract.levels") from None
    return list(dict.fromkeys(out))


def block_items(hidden: int, chunk_bytes: int, n_items: int) -> int:
    """Items per chunk so that one (items, 1, 1, hidden) float16 chunk is about ``chunk_bytes``."""
    return max(1, min(n_items, chunk_bytes // (2 * hidden)))


def estimate_bytes(n_items: int, n_levels: int, n_layers: int, hidden: int, full: int, full_tokens: int) -> int:
    return (
        2 * n_items * n_levels * n_layers * hidden * len(FEATURES)
        + 2 * full * n_levels * n_layers * full_tokens * hidden
    )


def extract_benchmark(
    model_name: str,
    bench: str,
    model: ModelConfig,
    extract: ExtractConfig,
    prompt: PromptConfig,
    items_path: Path,
    render_path: Path,
    out: Path,
    *,
    scoring: BenchmarkScoring,
    loaded: LoadedModel | None = None,
    progress: bool = True,
    part: Part = WHOLE,
) -> dict[str, Any]:
    """Extract ``part`` of the items (every item by default) into the store at ``out``."""
    config_slice = {"model": model, "extract": extract, "prompt": prompt, "scoring": scoring}
    job = ModelJob.open(
        "extract",
        model_name,
        bench,
        model,
        prompt,
        config_slice,
        items_path,
        render_path,
        out,
        scoring=scoring,
        loaded=loaded,
        progress=progress,
        layer_convention=LAYER_CONVENTION,
    )
    loaded_model = job.loaded
    order, too_long = within_prompt_limit(job, list(range(len(job.items))))  # position -> item index
    if too_long:
        print(f"extract {model_name}/{bench}: {too_long}", flush=True)
    if not order:
        raise BlindspotError(f"no item of '{bench}' fits the prompt limit: {too_long}", key="model.max_prompt_tokens")
    levels = resolve_levels(job.store, extract.levels)
    n_layers = len(loaded_model.layers) + 1
    hidden = int(loaded_model.model.config.get_text_config().hidden_size)
    block = block_items(hidden, extract.chunk_bytes, len(order))
    groups = [image_group(job.items[i]["image_keys"]) for i in order]
    blocks = part_items(groups, block, part)  # store positions, in blocks; a part's positions are contiguous
    start = blocks[0][0] if blocks else 0
    order = [order[p] for b in blocks for p in b]  # this part's store rows -> item index
    items = [job.items[i] for i in order]
    n_items = len(items)
    full = min(max(extract.full_items - start, 0), n_items)  # the first full_items store positions of the whole job
    size = estimate_bytes(n_items, len(levels), n_layers, hidden, full, extract.max_tokens)
    print(
        f"extract {model_name}/{bench}{'' if part.whole else f' part {part.label}'}: {n_items} items x "
        f"{len(levels)} levels x {n_layers} layers x {hidden} hidden; estimated store size {size / 2**20:.1f} MiB "
        "(as float16, before compression)",
        flush=True,
    )
    conditions = [job.store.condition_index(*parse_condition_key(k)) for k in levels]
    unreadable = attention_problem(job, loaded_model, order[0], conditions[0]) if extract.attention and order else None
    if unreadable:
        print(f"extract {model_name}/{bench}: attention not stored: {unreadable}", flush=True)
    heads = int(loaded_model.model.config.get_text_config().num_attention_heads)
    with_attention = extract.attention and unreadable is None
    record = part_record({**job.record, "levels": levels, "block_items": block, "left_out": too_long}, part)
    writer = HiddenStoreWriter.open(
        job.resume,
        [r["item_id"] for r in items],
        [image_group(r["image_keys"]) for r in items],
        levels,
        n_layers,
        hidden,
        block,
        full,
        extract.max_tokens,
        {
            "provenance": record,
            "layer_convention": LAYER_CONVENTION,
            "attention": None if with_attention else (unreadable or "extract.attention is off"),
            "sink_ratio": extract.sink_ratio,
        },
        dtype=extract.dtype,
        heads=heads if with_attention else 0,
    )
    register_partial(job.resume, lambda: len(writer.done()))
    done = writer.done()
    sizer = BatchSizer(model.batch_size, loaded_model.device.type)
    bar = job.bar(n_items, "item")
    for b, positions in enumerate(blocks):
        rows = range(positions[0] - start, positions[-1] - start + 1)
        if b in done:
            bar.update(len(rows))
            continue
        buffers = {name: np.zeros((len(rows), len(levels), n_layers, hidden), np.float32) for name in FEATURES}
        looks = AttentionBuffers.empty(len(rows), len(levels), n_layers - 1, heads) if with_attention else None
        run = partial(
            _extract_batch, job, loaded_model, conditions, order, buffers, looks, rows.start, full, items, extract,
            writer,
        )  # fmt: skip
        sizer.run(list(rows), run)
        writer.write_block(b, slice(rows.start, rows.stop), buffers, looks.arrays() if looks else None)
        bar.update(len(rows))
    bar.close()
    sizer.report(f"extract {model_name}/{bench}")
    writer.commit(out)
    job.finish()  # other, stale resume folders of this output
    summary = {"items": n_items, "levels": levels, "layers": n_layers, "hidden": hidden, "estimated_bytes": size}
    return summary | ({"left_out": too_long} if too_long else {})


def attention_problem(job: ModelJob, loaded: LoadedModel, item: int, condition: int) -> str | None:
    """Why this model's attention cannot be read (one short forward pass on one item), or None."""
    images = tuple(job.images(item, condition, job.levels(item)))
    request = Request(job.prompts.get(item, with_image=True), images, None)
    inputs = encode_batch(loaded, [request])
    with torch.inference_mode():
        return check_attention(loaded.layers, lambda: loaded.model(**inputs, logits_to_keep=1))


@dataclass
class AttentionBuffers:
    """One block's attention arrays (rows of the block, levels, decoder layers, heads) and named sinks."""

    image: np.ndarray
    sink: np.ndarray
    sink_token: np.ndarray
    sink_ratio: np.ndarray

    @classmethod
    def empty(cls, rows: int, levels: int, layers: int, heads: int) -> AttentionBuffers:
        return cls(
            np.full((rows, levels, layers, heads), np.nan, np.float32),
            np.full((rows, levels, layers, heads), np.nan, np.float32),
            np.full((rows, levels, MAX_SINKS), -1, np.int32),
            np.full((rows, levels, MAX_SINKS), np.nan, np.float32),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {"attention_image": self.image, "attention_sink": self.sink, "sink_token": self.sink_token,
                "sink_ratio": self.sink_ratio}  # fmt: skip

    def fill(self, rows: list[int], level: int, control: Control, cap: Capture, sink_ratio: float) -> None:
        """The last token's attention mass on the image (sinks apart) per layer and head, and the sinks."""
        image = cap.image_mask
        sink = sinks(cap, sink_ratio).to(image.device)
        plain = (image & ~sink).float()
        for layer, row in sorted(control.rows.items()):
            attention = row.to(image.device)  # (batch, heads, seq)
            self.image[rows, level, layer] = (attention * plain[:, None]).sum(-1).cpu().numpy()
            self.sink[rows, level, layer] = (attention * sink[:, None].float()).sum(-1).cpu().numpy()
        ordinal = image.long().cumsum(-1) - 1  # each image token's index among the row's image tokens
        ratio = cap.norm_ratio if cap.norm_ratio is not None else torch.zeros(image.shape)
        for k, r in enumerate(rows):
            found = sink[k].nonzero().flatten()
            strongest = found[ratio[k, found].argsort(descending=True)][:MAX_SINKS]
            self.sink_token[r, level, : len(strongest)] = ordinal[k, strongest].cpu().numpy()
            self.sink_ratio[r, level, : len(strongest)] = ratio[k, strongest].float().cpu().numpy()


def _extract_batch(
    job: ModelJob,
    loaded_model: LoadedModel,
    conditions: list[int],
    order: list[int],
    buffers: dict[str, np.ndarray],
    looks: AttentionBuffers | None,
    first: int,
    full: int,
    items: list[dict[str, Any]],
    extract: ExtractConfig,
    writer: HiddenStoreWriter,
    batch: list[int],
) -> list[None]:
    """One batch of store positions at every level: the features into ``buffers`` (rows from ``first``)."""
    caches = {p: job.levels(order[p]) for p in batch}  # one chunk read per image, every level
    for li, condition in enumerate(conditions):
        requests = [
            Request(job.prompts.get(order[p], with_image=True), tuple(job.images(order[p], condition, caches[p])), None)
            for p in batch
        ]
        inputs = encode_batch(loaded_model, requests)
        mask = loaded_model.family.image_positions(loaded_model.model, inputs["input_ids"])
        keep_full = any(i < full for i in batch)
        record = frozenset(range(len(loaded_model.layers))) if looks is not None else frozenset()
        with (
            torch.inference_mode(),
            capture_residual_stream(loaded_model.layers, loaded_model.final_norm, mask, keep_full=keep_full) as cap,
            attention_control(loaded_model.layers, record=record) if looks is not None else nullcontext() as control,
        ):
            loaded_model.model(**inputs, logits_to_keep=1)
        rows = [p - first for p in batch]
        for name in FEATURES:
            buffers[name][rows, li] = cap.stacked(name).cpu().numpy()
        if looks is not None and control is not None:
            looks.fill(rows, li, control, cap, extract.sink_ratio)
        if keep_full:
            _write_full(writer, loaded_model, cap, inputs, mask, batch, full, li, items, extract.max_tokens)
    return [None] * len(batch)


def _write_full(
    writer: HiddenStoreWriter,
    loaded: LoadedModel,
    cap: Capture,
    inputs: dict[str, torch.Tensor],
    image_mask: Bool[torch.Tensor, "batch seq"],
    batch: list[int],
    full: int,
    level: int,
    items: list[dict[str, Any]],
    max_tokens: int,
) -> None:
    """Every token's state (last ``max_tokens`` positions) for the first ``full`` items, with token roles."""
    assert cap.full is not None
    states = torch.stack([s for s in cap.full if s is not None], dim=1)  # (batch, layer, seq, hidden)
    attention = inputs["attention_mask"].bool()
    for row, i in enumerate(batch):
        if i >= full:
            continue
        question = question_mask(loaded, inputs["input_ids"][row : row + 1], items[i]["question"])[0]
        role = torch.where(image_mask[row], ROLE_IMAGE, torch.where(question, ROLE_QUESTION, ROLE_TEMPLATE))
        role = torch.where(attention[row], role, ROLE_PAD)
        writer.write_tokens(i, level, states[row].float().cpu().numpy(), role.cpu().numpy(), max_tokens)


def run(config: ExtractSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    summary = extract_benchmark(
        job.model,
        job.bench,
        config.model,
        config.extract,
        config.prompt,
        inputs["item_table"],
        inputs["render"],
        outputs["hidden"],
        scoring=config.scoring,
        progress=job.progress,
        part=job.part,
    )
    return f"extracted {job.model} on {job.bench}{job.part_suffix}: {summary}"


def gather(config: ExtractSlice, inputs: Paths, parts: Sequence[Paths], outputs: Paths, job: JobContext) -> str:
    """The parts' stores, their items in part order: the store the unsplit job writes."""
    items = gather_stores([paths["hidden"] for paths in parts], outputs["hidden"])
    return f"gathered {len(parts)} parts of extract {job.model} on {job.bench}: {items} items"
