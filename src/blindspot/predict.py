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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from blindspot.config import ModelConfig, PredictConfig, PromptConfig
from blindspot.contracts.conditions import LLM_CONDITION, NONE_CONDITION, Condition, resolve_condition_key
from blindspot.contracts.tables import PREDICTIONS_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.models.inference import Request, Response, generate_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel, load_language_model
from blindspot.models.prompts import PromptCache
from blindspot.prompts import option_labels
from blindspot.render.store import RenderStore
from blindspot.stages import JobContext, Paths, PredictSlice
from blindspot.tables import write_table


class PredictError(BlindspotError):
    """The predict job cannot run as configured (one line)."""


@dataclass(frozen=True)
class WorkUnit:
    item: int
    """Row of the items table."""
    condition: Condition


def select_conditions(store: RenderStore, config: PredictConfig) -> list[Condition]:
    """Conditions to run, in store order, then ``none``. The clean image (blur/0) is always included."""
    if config.conditions == "all":
        return [*store.conditions, NONE_CONDITION]
    wanted = {"blur/0"}
    for key in config.conditions:
        if key == NONE_CONDITION.family:
            continue
        try:
            wanted.add(resolve_condition_key(key, store.conditions).key)
        except KeyError as error:
            raise PredictError(f"{error.args[0]} (not rendered)", key="predict.conditions") from None
    chosen = [c for c in store.conditions if c.key in wanted]
    return chosen + ([NONE_CONDITION] if NONE_CONDITION.family in config.conditions else [])


def work_units(n_items: int, conditions: list[Condition]) -> list[WorkUnit]:
    """Image conditions item by item (one chunk read serves all of an item's levels), then ``none`` for all, then
    the base language model (``llm``) for all."""
    imaged = [c for c in conditions if c not in (NONE_CONDITION, LLM_CONDITION)]
    units = [WorkUnit(i, c) for i in range(n_items) for c in imaged]
    for text_only in (NONE_CONDITION, LLM_CONDITION):
        if text_only in conditions:
            units += [WorkUnit(i, text_only) for i in range(n_items)]
    return units


def _runs_on(condition: Condition) -> str:
    """Which model and prompt a unit needs: the VLM with images, the VLM without, or the base language model."""
    return condition.family if condition in (NONE_CONDITION, LLM_CONDITION) else "image"


def _rows(job: ModelJob, units: list[WorkUnit], responses: list[Response]) -> list[dict[str, Any]]:
    rows = []
    for unit, response in zip(units, responses, strict=True):
        item = job.items[unit.item]
        parsed = job.benchmark.parse(response.text, item)
        outcome, score = job.benchmark.score(parsed, item)
        logprobs = response.option_logprobs
        rows.append(
            {
                "model": job.model_name,
                "benchmark": job.bench,
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
                "first_token_is_label": response.first_token_is_label,
            }
        )
    return rows


def predict_units(
    job: ModelJob,
    units: list[WorkUnit],
    batch_size: int,
    max_new_tokens: int,
    bar: tqdm | None = None,
    loaded: LoadedModel | None = None,
    llm: tuple[LoadedModel, PromptCache] | None = None,
) -> list[dict[str, Any]]:
    """Run ``units`` in batches; a batch never mixes units of different kinds (with images, without, base
    language model). ``loaded`` runs another model (a hybrid) through the job's items, prompts and parsing;
    ``llm`` is the base language model and its prompts, for the ``llm`` condition."""
    model = loaded or job.loaded
    levels: dict[str, np.ndarray] = {}  # every condition of the images of the item being run (units go item by item)
    levels_of = -1
    rows: list[dict[str, Any]] = []
    start = 0
    while start < len(units):
        kind = _runs_on(units[start].condition)
        end = start
        while end < len(units) and end - start < batch_size and _runs_on(units[end].condition) == kind:
            end += 1
        batch = units[start:end]
        if kind == LLM_CONDITION.family and llm is None:
            raise PredictError("the llm condition needs the base language model", key="model.llm")
        runner, prompts = llm if kind == LLM_CONDITION.family and llm is not None else (model, job.prompts)
        requests = []
        for unit in batch:
            item = job.items[unit.item]
            images: tuple[np.ndarray, ...] = ()
            if kind == "image":
                if levels_of != unit.item:
                    levels, levels_of = job.levels(unit.item), unit.item
                index = job.store.condition_index(unit.condition.family, unit.condition.level)
                images = tuple(job.images(unit.item, index, levels))
            labels = option_labels(item["answer_type"], item["options"])
            requests.append(Request(prompts.get(unit.item, kind == "image"), images, tuple(labels) if labels else None))
        rows += _rows(job, batch, generate_batch(runner, requests, max_new_tokens))
        if bar is not None:
            bar.update(len(batch))
        start = end
    return rows


def predict_benchmark(
    model_name: str,
    bench: str,
    model: ModelConfig,
    predict: PredictConfig,
    prompt: PromptConfig,
    items_path: Path,
    render_path: Path,
    out: Path,
    *,
    loaded: LoadedModel | None = None,
    progress: bool = True,
) -> int:
    """Run the predict step; returns the number of rows written. ``loaded`` reuses an already loaded model."""
    config_slice = {"model": model, "predict": predict, "prompt": prompt}
    job = ModelJob.open(
        "predict",
        model_name,
        bench,
        model,
        prompt,
        config_slice,
        items_path,
        render_path,
        out,
        loaded=loaded,
        progress=progress,
    )
    conditions = select_conditions(job.store, predict) + ([LLM_CONDITION] if model.llm else [])
    units = work_units(len(job.items), conditions)
    llm = None
    if model.llm:  # MMStar's S_t: the same questions, text only, to the base language model
        language_model = load_language_model(model)
        text = job.prompts.text
        llm = (language_model, PromptCache(language_model.processor, job.items, text))
    job.resume.mkdir(parents=True, exist_ok=True)
    n_shards = (len(units) + predict.shard_size - 1) // predict.shard_size
    done = {int(p.stem.split("-")[1]) for p in job.resume.glob("shard-*.parquet")}

    bar = job.bar(len(units), "unit")
    bar.update(sum(len(units[s * predict.shard_size : (s + 1) * predict.shard_size]) for s in done))
    for shard in range(n_shards):
        if shard in done:
            continue
        shard_units = units[shard * predict.shard_size : (shard + 1) * predict.shard_size]
        rows = predict_units(job, shard_units, model.batch_size, model.max_new_tokens, bar, llm=llm)
        write_table(rows, PREDICTIONS_SCHEMA, job.record, job.resume / f"shard-{shard:05d}.parquet")
    bar.close()

    shards = [pq.read_table(job.resume / f"shard-{s:05d}.parquet") for s in range(n_shards)]
    table = pa.concat_tables(shards) if shards else PREDICTIONS_SCHEMA.empty_table()
    write_table(table, PREDICTIONS_SCHEMA, job.record, out)
    job.finish()
    return table.num_rows


def run(config: PredictSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    rows = predict_benchmark(
        job.model,
        job.bench,
        config.model,
        config.predict,
        config.prompt,
        inputs["item_table"],
        inputs["render"],
        outputs["predictions"],
        progress=job.progress,
    )
    return f"predicted {job.model} on {job.bench}: {rows} rows"
