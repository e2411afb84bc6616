"""The extract step: per-layer residual-stream features to a chunked Zarr store, streamed and resumable.

Store ``results/hidden/{model}/{bench}.zarr`` (Zarr v3)::

    last_token    float16 [item, level, layer, hidden]   state at the last prompt token
    image_mean    float16 [item, level, layer, hidden]   mean over image-token positions
    item_id       string  [item]
    image_sha256  string  [item]     source image: probes split by it, so blur copies never straddle folds
    level         string  [level]    condition keys, e.g. blur/0 (clean) and blur/7 (most severe)
    layer         int32   [layer]    0 = embeddings ... L = last layer after the final norm (see attrs)
    token_states  float16 [item, level, layer, token, hidden]  opt-in: every token (last ``max_tokens``, right-
                                                             aligned: the last prompt token is at -1), first
                                                             ``full_items`` items; select image tokens by role
    token_role    int8    [item, level, token]  0 pad, 1 template, 2 image, 3 question

Chunks are (block of items, 1 level, 1 layer, hidden), about ``chunk_bytes`` each. Items are processed block by
block; each finished block is marked in the temporary store, so a killed job restarted skips finished blocks and
memory stays flat however many items there are. The finished store is renamed into place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import zarr
from tqdm import tqdm

from blindspot.config import ExtractConfig, ModelConfig
from blindspot.models.capture import FEATURES, LAYER_CONVENTION, capture_residual_stream
from blindspot.models.inference import Request, encode_batch
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.prompts import PromptCache
from blindspot.provenance import inputs_key, provenance
from blindspot.render.store import RenderStore
from blindspot.zarr_arrays import write_array

ROLE_PAD, ROLE_TEMPLATE, ROLE_IMAGE, ROLE_QUESTION = 0, 1, 2, 3


class ExtractError(RuntimeError):
    """The extract job cannot run as configured (one line)."""


def resolve_levels(store: RenderStore, levels: list[str]) -> list[str]:
    """Condition keys; ``blur/-1`` names the most severe level of the blur ladder."""
    stored = [c.key for c in store.conditions]
    out = []
    for key in levels:
        family, _, level = key.partition("/")
        if level.startswith("-"):
            ladder = sorted(c.level for c in store.conditions if c.family == family)
            key = f"{family}/{ladder[int(level)]}" if ladder else key
        if key not in stored:
            raise ExtractError(f"extract.levels: '{key}' is not rendered (have: {', '.join(stored)})")
        out.append(key)
    return list(dict.fromkeys(out))


def block_items(hidden: int, chunk_bytes: int, n_items: int) -> int:
    """Items per chunk so that one (items, 1, 1, hidden) float16 chunk is about ``chunk_bytes``."""
    return max(1, min(n_items, chunk_bytes // (2 * hidden)))


def estimate_bytes(n_items: int, n_levels: int, n_layers: int, hidden: int, full: int, full_tokens: int) -> int:
    return (
        2 * n_items * n_levels * n_layers * hidden * len(FEATURES)
        + 2 * full * n_levels * n_layers * full_tokens * hidden
    )


def _question_mask(loaded: LoadedModel, input_ids: torch.Tensor, question: str) -> torch.Tensor:
    """Positions of the question's own tokens: the last occurrence of its token sequence in the prompt."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for variant in (question, " " + question, "\n" + question):
        ids = loaded.tokenizer.encode(variant, add_special_tokens=False)[1:-1] or []
        if len(ids) < 1:
            continue
        for row in range(input_ids.shape[0]):
            seq = input_ids[row].tolist()
            for start in range(len(seq) - len(ids), -1, -1):
                if seq[start : start + len(ids)] == ids:
                    mask[row, start : start + len(ids)] = True
                    break
        if mask.any():
            return mask
    return mask


def extract_benchmark(
    model_name: str,
    model: ModelConfig,
    extract: ExtractConfig,
    items_path: str | Path,
    render_path: str | Path,
    out: str | Path,
    *,
    loaded: LoadedModel | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    items_path, render_path, out = Path(items_path), Path(render_path), Path(out)
    items = pl.read_parquet(items_path).to_dicts()
    store = RenderStore(render_path)
    levels = resolve_levels(store, extract.levels)
    loaded = loaded or load_model(model)
    n_layers = len(loaded.layers) + 1
    hidden = int(loaded.model.config.get_text_config().hidden_size)
    n_items = len(items)
    block = block_items(hidden, extract.chunk_bytes, n_items)
    full = min(extract.full_items, n_items)
    size = estimate_bytes(n_items, len(levels), n_layers, hidden, full, extract.max_tokens)
    print(
        f"extract {model_name}/{out.stem}: {n_items} items x {len(levels)} levels x {n_layers} layers x {hidden} "
        f"hidden; estimated store size {size / 2**20:.1f} MiB (float16, before compression)",
        flush=True,
    )

    config_slice = {"model": model, "extract": extract}
    tmp = out.with_name(f".{out.name}.partial-{inputs_key(config_slice, items_path, render_path / 'zarr.json')}")
    record = provenance(
        "extract",
        config_slice,
        model_name=model_name,
        model=loaded.provenance(),
        layer_convention=LAYER_CONVENTION,
        levels=levels,
        block_items=block,
    )
    group = _open_store(tmp, items, levels, n_layers, hidden, block, full, extract.max_tokens, record)
    done = set(json.loads((tmp / "blocks_done.json").read_text())) if (tmp / "blocks_done.json").exists() else set()
    prompts = PromptCache(loaded.processor, items, "v1")
    conditions = [store.condition_index(k.partition("/")[0], int(k.partition("/")[2])) for k in levels]
    n_blocks = (n_items + block - 1) // block
    bar = tqdm(total=n_items, desc=f"extract {model_name}/{out.stem}", unit="item", disable=not progress)
    for b in range(n_blocks):
        rows = range(b * block, min((b + 1) * block, n_items))
        if b in done:
            bar.update(len(rows))
            continue
        buffers = {name: np.zeros((len(rows), len(levels), n_layers, hidden), np.float16) for name in FEATURES}
        for start in range(0, len(rows), model.batch_size):
            batch = list(rows)[start : start + model.batch_size]
            chunks = [store.levels(items[i]["image_sha256"]) for i in batch]  # one chunk read per item, all levels
            for li, condition in enumerate(conditions):
                requests = [
                    Request(prompts.get(i, with_image=True), chunk[condition], None)
                    for i, chunk in zip(batch, chunks, strict=True)
                ]
                inputs = encode_batch(loaded, requests)
                mask = loaded.family.image_positions(loaded.model, inputs["input_ids"])
                keep_full = any(i < full for i in batch)
                with (
                    torch.inference_mode(),
                    capture_residual_stream(loaded.layers, loaded.final_norm, mask, keep_full=keep_full) as cap,
                ):
                    loaded.model(**inputs, logits_to_keep=1)
                for name in FEATURES:
                    values = cap.stacked(name).cpu().numpy().astype(np.float16)
                    buffers[name][start : start + len(batch), li] = values
                if keep_full:
                    _write_full(group, loaded, cap, inputs, mask, batch, full, li, items, extract.max_tokens)
        region = slice(rows.start, rows.stop)
        for name in FEATURES:
            group[name][region] = buffers[name]
        done.add(b)
        (tmp / "blocks_done.json").write_text(json.dumps(sorted(done)))
        bar.update(len(rows))
    bar.close()
    (tmp / "blocks_done.json").unlink()
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return {"items": n_items, "levels": levels, "layers": n_layers, "hidden": hidden, "estimated_bytes": size}


def _open_store(
    path: Path,
    items: list[dict[str, Any]],
    levels: list[str],
    n_layers: int,
    hidden: int,
    block: int,
    full: int,
    max_tokens: int,
    record: dict[str, Any],
) -> Any:
    """Open the partial store (resume) or create it."""
    if (path / "zarr.json").exists():
        return zarr.open_group(store=str(path), mode="r+")
    group = zarr.open_group(store=str(path), mode="w", zarr_format=3)
    shape = (len(items), len(levels), n_layers, hidden)
    for name in FEATURES:
        group.create_array(
            name,
            shape=shape,
            chunks=(block, 1, 1, hidden),
            dtype="float16",
            fill_value=np.nan,
            dimension_names=("item", "level", "layer", "hidden"),
        )

    write_array(group, "item_id", np.array([r["item_id"] for r in items], dtype=str), ("item",))
    write_array(group, "image_sha256", np.array([r["image_sha256"] for r in items], dtype=str), ("item",))
    write_array(group, "level", np.array(levels, dtype=str), ("level",))
    write_array(group, "layer", np.arange(n_layers, dtype=np.int32), ("layer",))
    if full:
        group.create_array(
            "token_states",
            shape=(full, len(levels), n_layers, max_tokens, hidden),
            dtype="float16",
            chunks=(1, 1, n_layers, max_tokens, hidden),
            fill_value=0.0,
            dimension_names=("item", "level", "layer", "token", "hidden"),
        )
        group.create_array(
            "token_role",
            shape=(full, len(levels), max_tokens),
            dtype="int8",
            fill_value=0,
            dimension_names=("item", "level", "token"),
        )
    group.attrs.update(
        {"provenance": record, "layer_convention": record["layer_convention"], "features": list(FEATURES)}
    )
    return group


def _write_full(
    group: Any,
    loaded: LoadedModel,
    cap: Any,
    inputs: dict[str, torch.Tensor],
    image_mask: torch.Tensor,
    batch: list[int],
    full: int,
    level: int,
    items: list[dict[str, Any]],
    max_tokens: int,
) -> None:
    """Every token's state (last ``max_tokens`` positions) for the first ``full`` items, with token roles."""
    states = torch.stack(cap.full, dim=1)  # (batch, layer, seq, hidden)
    attention = inputs["attention_mask"].bool()
    for row, i in enumerate(batch):
        if i >= full:
            continue
        question = _question_mask(loaded, inputs["input_ids"][row : row + 1], items[i]["question"])[0]
        role = torch.where(image_mask[row], ROLE_IMAGE, torch.where(question, ROLE_QUESTION, ROLE_TEMPLATE))
        role = torch.where(attention[row], role, ROLE_PAD)
        seq = states.shape[2]
        take = min(seq, max_tokens)
        # Right-aligned, like the left-padded batch: the last prompt token is at position -1.
        group["token_states"][i, level, :, max_tokens - take :] = (
            states[row, :, seq - take :].float().cpu().numpy().astype(np.float16)
        )
        group["token_role"][i, level, max_tokens - take :] = role[seq - take :].cpu().numpy().astype(np.int8)
