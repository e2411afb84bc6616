"""The predict step: one model on every rendered condition of every item, greedy and batched, resumable.

Work units are (item, condition) pairs: every rendered condition selected in config, then the text-only ``none``
condition (MMStar's S_wv). Units are processed in fixed shards; each finished shard is written atomically to a
shard folder keyed by the job's inputs, so a killed job restarted skips what it finished. The final table is the
shards concatenated, written atomically, and the shard folder removed.

Output: one row per (item, family, level) with the raw text, the parsed answer, the outcome, the score and, for
closed answer spaces, the log-probability of every option label at the first answer token and ``scored``, the
most likely label (the log-likelihood reading; ``parsed`` is what the model actually wrote).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from blindspot.answers import parse_answer, score_answer
from blindspot.config import ModelConfig, PredictConfig
from blindspot.models.inference import Request, Response, generate_batch
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.prompts import PromptCache, option_labels
from blindspot.provenance import inputs_key, provenance
from blindspot.render.families import Condition
from blindspot.render.store import RenderStore
from blindspot.tables import write_table

NONE_CONDITION = Condition("none", 1, 0.0)
"""The text-only condition: the same prompt with no image at all."""

PREDICTIONS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("level", pa.int32(), nullable=False),
        pa.field("param", pa.float32(), nullable=False),
        pa.field("answer_type", pa.string(), nullable=False),
        pa.field("gold", pa.string(), nullable=False),
        pa.field("n_options", pa.int32()),
        pa.field("raw_text", pa.string(), nullable=False),
        pa.field("parsed", pa.string()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("option_labels", pa.list_(pa.string())),
        pa.field("option_logprobs", pa.list_(pa.float64())),
        pa.field("scored", pa.string()),
    ]
)


class PredictError(RuntimeError):
    """The predict job cannot run as configured (one line)."""


@dataclass(frozen=True)
class WorkUnit:
    item: int
    """Row of the items table."""
    condition: Condition


def select_conditions(store: RenderStore, config: PredictConfig) -> list[Condition]:
    """Conditions to run, in store order, then ``none``. The clean image (blur/0) is always included."""
    stored = {c.key: c for c in store.conditions}
    if config.conditions == "all":
        return [*store.conditions, NONE_CONDITION]
    wanted = ["blur/0", *[k for k in config.conditions if k != "blur/0"]]
    missing = [k for k in wanted if k != "none" and k not in stored]
    if missing:
        raise PredictError(f"predict.conditions: {', '.join(missing)} not rendered (have: {', '.join(stored)})")
    chosen = [c for c in store.conditions if c.key in wanted]
    return chosen + ([NONE_CONDITION] if "none" in wanted else [])


def work_units(n_items: int, conditions: list[Condition]) -> list[WorkUnit]:
    """Image conditions item by item (one chunk read serves all of an item's levels), then ``none`` for all."""
    imaged = [c for c in conditions if c.family != "none"]
    units = [WorkUnit(i, c) for i in range(n_items) for c in imaged]
    if NONE_CONDITION in conditions:
        units += [WorkUnit(i, NONE_CONDITION) for i in range(n_items)]
    return units


def _rows(units: list[WorkUnit], responses: list[Response], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for unit, response in zip(units, responses, strict=True):
        item = items[unit.item]
        parsed = parse_answer(response.text, item["answer_type"], item["options"])
        outcome, score = score_answer(parsed, item["answer"], item["answer_type"], item["answers"])
        logprobs = response.option_logprobs
        rows.append(
            {
                "item_id": item["item_id"],
                "family": unit.condition.family,
                "level": unit.condition.level,
                "param": unit.condition.param,
                "answer_type": item["answer_type"],
                "gold": item["answer"],
                "n_options": len(item["options"]) if item["options"] else None,
                "raw_text": response.text,
                "parsed": parsed.answer,
                "outcome": outcome,
                "score": score,
                "option_labels": list(logprobs) if logprobs else None,
                "option_logprobs": list(logprobs.values()) if logprobs else None,
                "scored": max(logprobs, key=logprobs.__getitem__) if logprobs else None,
            }
        )
    return rows


def predict_units(
    loaded: LoadedModel,
    items: list[dict[str, Any]],
    store: RenderStore | None,
    units: list[WorkUnit],
    prompts: PromptCache,
    batch_size: int,
    max_new_tokens: int,
    bar: tqdm | None = None,
) -> list[dict[str, Any]]:
    """Run ``units`` in batches; a batch never mixes units with and without an image."""

    @lru_cache(maxsize=4)
    def levels(image_key: str) -> np.ndarray:
        assert store is not None
        return store.levels(image_key)

    rows: list[dict[str, Any]] = []
    start = 0
    while start < len(units):
        imaged = units[start].condition.family != "none"
        end = start
        while end < len(units) and end - start < batch_size and (units[end].condition.family != "none") == imaged:
            end += 1
        batch = units[start:end]
        requests = []
        for unit in batch:
            item = items[unit.item]
            image = None
            if imaged:
                assert store is not None
                image = levels(item["image_sha256"])[store.condition_index(unit.condition.family, unit.condition.level)]
            labels = option_labels(item["answer_type"], item["options"])
            requests.append(Request(prompts.get(unit.item, imaged), image, tuple(labels) if labels else None))
        rows += _rows(batch, generate_batch(loaded, requests, max_new_tokens), items)
        if bar is not None:
            bar.update(len(batch))
        start = end
    return rows


def _shard_dir(out: Path, key: str) -> Path:
    return out.with_name(f".{out.name}.shards-{key}")


def predict_benchmark(
    model_name: str,
    model: ModelConfig,
    predict: PredictConfig,
    items_path: str | Path,
    render_path: str | Path,
    out: str | Path,
    *,
    loaded: LoadedModel | None = None,
    progress: bool = True,
) -> int:
    """Run the predict step; returns the number of rows written. ``loaded`` reuses an already loaded model."""
    items_path, render_path, out = Path(items_path), Path(render_path), Path(out)
    items = pl.read_parquet(items_path).to_dicts()
    store = RenderStore(render_path)
    conditions = select_conditions(store, predict)
    units = work_units(len(items), conditions)
    config_slice = {"model": model, "predict": predict}
    shard_dir = _shard_dir(out, inputs_key(config_slice, items_path, render_path / "zarr.json"))
    shard_dir.mkdir(parents=True, exist_ok=True)
    n_shards = (len(units) + predict.shard_size - 1) // predict.shard_size
    done = {int(p.stem.split("-")[1]) for p in shard_dir.glob("shard-*.parquet")}

    loaded = loaded or load_model(model)
    prompts = PromptCache(loaded.processor, items, predict.prompt_version)
    record = provenance(
        "predict", config_slice, model_name=model_name, model=loaded.provenance(), prompt_version=predict.prompt_version
    )
    bar = tqdm(total=len(units), desc=f"predict {model_name}/{out.stem}", unit="unit", disable=not progress)
    bar.update(sum(len(units[s * predict.shard_size : (s + 1) * predict.shard_size]) for s in done))
    for shard in range(n_shards):
        if shard in done:
            continue
        shard_units = units[shard * predict.shard_size : (shard + 1) * predict.shard_size]
        rows = predict_units(loaded, items, store, shard_units, prompts, model.batch_size, model.max_new_tokens, bar)
        write_table(rows, PREDICTIONS_SCHEMA, record, shard_dir / f"shard-{shard:05d}.parquet")
    bar.close()

    shards = [pq.read_table(shard_dir / f"shard-{s:05d}.parquet") for s in range(n_shards)]
    table = pa.concat_tables(shards) if shards else PREDICTIONS_SCHEMA.empty_table()
    write_table(table, PREDICTIONS_SCHEMA, record, out)
    shutil.rmtree(shard_dir)
    return table.num_rows
