"""Answering items through the predict path: work units, batches that never mix kinds, one row per answer.

The predict stage runs a model over every (item, condition) unit with :func:`predict_units`; the swap stage runs
each hybrid through the same function, so a hybrid's answers compare row for row with the predictions table (same
prompts, batching, parsing, scoring and option log-probs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from blindspot.contracts.conditions import LLM_CONDITION, NONE_CONDITION, Condition
from blindspot.errors import BlindspotError
from blindspot.models.inference import Request, Response, generate_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel
from blindspot.models.prompts import PromptCache
from blindspot.prompts import option_labels


class AnsweringError(BlindspotError):
    """Units that cannot be answered as configured (one line)."""


@dataclass(frozen=True)
class WorkUnit:
    item: int
    """Row of the items table."""
    condition: Condition


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


def prompt_limit(loaded: LoadedModel) -> int:
    """The longest prompt (text tokens) a model runs: its ``max_prompt_tokens``, and never beyond its context."""
    text_config = loaded.model.config.get_text_config()
    context = getattr(text_config, "max_position_embeddings", None) or loaded.config.max_prompt_tokens
    return min(loaded.config.max_prompt_tokens, int(context))


def within_prompt_limit(job: ModelJob, indices: list[int]) -> tuple[list[int], str | None]:
    """The items (by index) whose prompt with its images fits the model's :func:`prompt_limit`, and a note naming
    how many do not (None when all fit). Stages that run one forward per item (extract, patch) leave the others
    out, as predict does, rather than run a prompt past the model's context."""
    limit = prompt_limit(job.loaded)
    kept = [i for i in indices if job.prompts.length(i, True) <= limit]
    if len(kept) == len(indices):
        return kept, None
    return kept, (
        f"{len(indices) - len(kept)} items left out: prompt longer than {limit} tokens "
        "(models.<name>.max_prompt_tokens or the model's context)"
    )


def _rows(
    job: ModelJob, units: list[WorkUnit], responses: list[Response], notes: list[str | None] | None = None
) -> list[dict[str, Any]]:
    rows = []
    notes = notes or [None] * len(units)
    for unit, response, note in zip(units, responses, notes, strict=True):
        item = job.items[unit.item]
        parsed = job.benchmark.parse(response.text, item)
        outcome, score = job.benchmark.score(parsed, item, job.open_scorer)
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
                "hedged": parsed.hedged,
                "score_official": job.benchmark.score_official(response.text, item, job.open_scorer),
                "note": note,
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
            raise AnsweringError("the llm condition needs the base language model", key="model.llm")
        runner, prompts = llm if kind == LLM_CONDITION.family and llm is not None else (model, job.prompts)
        limit = prompt_limit(runner)
        lengths = [prompts.length(unit.item, kind == "image") for unit in batch]
        too_long = [length > limit for length in lengths]
        runnable = [unit for unit, skip in zip(batch, too_long, strict=True) if not skip]
        requests = []
        for unit in runnable:
            item = job.items[unit.item]
            images: tuple[np.ndarray, ...] = ()
            if kind == "image":
                if levels_of != unit.item:
                    levels, levels_of = job.levels(unit.item), unit.item
                index = job.store.condition_index(unit.condition.family, unit.condition.level)
                images = tuple(job.images(unit.item, index, levels))
            labels = option_labels(item["answer_type"], item["options"])
            requests.append(Request(prompts.get(unit.item, kind == "image"), images, tuple(labels) if labels else None))
        generated = iter(generate_batch(runner, requests, max_new_tokens) if requests else [])
        responses = [Response("", None) if skip else next(generated) for skip in too_long]
        notes = [
            f"not run: a prompt of {length} tokens exceeds {limit} (models.<name>.max_prompt_tokens or the model's "
            "context)"
            if skip
            else None
            for length, skip in zip(lengths, too_long, strict=True)
        ]
        if any(too_long):
            print(f"{sum(too_long)} item(s) not run: prompt longer than {limit} tokens (see `note`)", flush=True)
        rows += _rows(job, batch, responses, notes)
        if bar is not None:
            bar.update(len(batch))
        start = end
    return rows
