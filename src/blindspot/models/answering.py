"""Answering items through the predict path: work units, batches that never mix kinds, one row per answer.

The predict stage runs a model over every (item, condition) unit with :func:`predict_units`; the swap stage runs
each hybrid through the same function, so a hybrid's answers compare row for row with the predictions table (same
prompts, batching, parsing, scoring and option log-probs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from blindspot.contracts.conditions import LLM_CONDITION, NONE_CONDITION, Condition
from blindspot.errors import BlindspotError
from blindspot.models.batching import BatchSizer, bucket_order
from blindspot.models.inference import MARGIN_ONLY_NOTE, Request, Response, generate_batch
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


def work_units(items: int | Sequence[int], conditions: list[Condition]) -> list[WorkUnit]:
    """Image conditions item by item (one chunk read serves all of an item's levels), then ``none`` for all, then
    the base language model (``llm``) for all. ``items``: the item rows (or their number, for every row)."""
    rows = range(items) if isinstance(items, int) else items
    imaged = [c for c in conditions if c not in (NONE_CONDITION, LLM_CONDITION)]
    units = [WorkUnit(i, c) for i in rows for c in imaged]
    for text_only in (NONE_CONDITION, LLM_CONDITION):
        if text_only in conditions:
            units += [WorkUnit(i, text_only) for i in rows]
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
        f"(models.{job.model_name}.max_prompt_tokens or the model's context)"
    )


def _rows(
    job: ModelJob,
    units: list[WorkUnit],
    responses: list[Response],
    notes: list[str | None] | None = None,
    prompts: list[str] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    notes = notes or [None] * len(units)
    prompts = prompts or [""] * len(units)
    for unit, response, note, prompt in zip(units, responses, notes, prompts, strict=True):
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
                "prompt": prompt,
            }
        )
    return rows


IMAGE_PIXELS_PER_TOKEN = 28 * 28
"""For length buckets only: an image's cost in prompt tokens is estimated as its area over 28 x 28 pixels
(Qwen2.5-VL's merged patch); any estimate that grows with the area orders batches the same way."""


def _cost(job: ModelJob, unit: WorkUnit, text_length: int, with_image: bool) -> float:
    """A unit's estimated prompt length: text tokens plus, with images, their area in 28 x 28 patches."""
    if not with_image:
        return float(text_length)
    store = job.store
    area = 0
    for key in job.items[unit.item]["image_keys"]:
        index = store.index_of(key)
        area += int(store.heights[index]) * int(store.widths[index])
    return text_length + area / IMAGE_PIXELS_PER_TOKEN


def _request(
    job: ModelJob, prompts: PromptCache, unit: WorkUnit, with_image: bool, cache: dict[int, dict[str, np.ndarray]]
) -> Request:
    """One unit's prompt, images and option labels; ``cache`` holds the levels of the item being run (one chunk
    read serves all of an item's conditions)."""
    item = job.items[unit.item]
    images: tuple[np.ndarray, ...] = ()
    if with_image:
        if unit.item not in cache:
            cache.clear()
            cache[unit.item] = job.levels(unit.item)
        index = job.store.condition_index(unit.condition.family, unit.condition.level)
        images = tuple(job.images(unit.item, index, cache[unit.item]))
    labels = option_labels(item["answer_type"], item["options"])
    return Request(prompts.get(unit.item, with_image), images, tuple(labels) if labels else None)


@dataclass
class _Run:
    """Units of one kind, answered by one model with one prompt cache, in length-bucketed batches."""

    job: ModelJob
    units: list[WorkUnit]
    runner: LoadedModel
    prompts: PromptCache
    with_image: bool
    max_new_tokens: int
    bar: tqdm | None
    cache: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def answer(self, sizer: BatchSizer) -> list[dict[str, Any]]:
        limit = prompt_limit(self.runner)
        lengths = [self.prompts.length(unit.item, self.with_image) for unit in self.units]
        too_long = [length > limit for length in lengths]
        runnable = [p for p, skip in enumerate(too_long) if not skip]
        costs = [_cost(self.job, self.units[p], lengths[p], self.with_image) for p in runnable]
        order = [runnable[i] for i in bucket_order(costs)]
        answered = dict(sizer.run(order, self._batch))
        responses = [answered.get(p, Response("", None)) for p in range(len(self.units))]
        notes = [
            f"not run: a prompt of {length} tokens exceeds {limit} (models.{self.job.model_name}.max_prompt_tokens or "
            "the model's context)"
            if skip
            else MARGIN_ONLY_NOTE
            if self.max_new_tokens == 0 and responses[p].option_logprobs is None
            else None
            for p, (length, skip) in enumerate(zip(lengths, too_long, strict=True))
        ]
        if self.max_new_tokens == 0 and (unanswered := notes.count(MARGIN_ONLY_NOTE)):
            print(f"{unanswered} open question(s) not answered: {MARGIN_ONLY_NOTE}", flush=True)
        if any(too_long):
            print(f"{sum(too_long)} item(s) not run: prompt longer than {limit} tokens (see `note`)", flush=True)
            if self.bar is not None:
                self.bar.update(sum(too_long))
        prompts = [self.prompts.get(unit.item, self.with_image) for unit in self.units]
        return _rows(self.job, self.units, responses, notes, prompts)

    def _batch(self, positions: list[int]) -> list[tuple[int, Response]]:
        requests = [_request(self.job, self.prompts, self.units[p], self.with_image, self.cache) for p in positions]
        responses = generate_batch(self.runner, requests, self.max_new_tokens)
        if self.bar is not None:
            self.bar.update(len(positions))
        return list(zip(positions, responses, strict=True))


def predict_units(
    job: ModelJob,
    units: list[WorkUnit],
    batch_size: int | Literal["auto"] | BatchSizer,
    max_new_tokens: int,
    bar: tqdm | None = None,
    loaded: LoadedModel | None = None,
    llm: tuple[LoadedModel, PromptCache] | None = None,
) -> list[dict[str, Any]]:
    """Run ``units`` in length-bucketed batches (:mod:`blindspot.models.batching`); a batch never mixes units of
    different kinds (with images, without, base language model). Rows come back in the order of ``units``.
    ``batch_size``: a size, ``auto``, or a :class:`BatchSizer` shared across calls (so ``auto`` settles once per
    job). ``loaded`` runs another model (a hybrid) through the job's items, prompts and parsing; ``llm`` is the
    base language model and its prompts, for the ``llm`` condition."""
    model = loaded or job.loaded
    sizer = batch_size if isinstance(batch_size, BatchSizer) else BatchSizer(batch_size, model.device.type)
    rows: list[dict[str, Any]] = []
    start = 0
    while start < len(units):
        kind = _runs_on(units[start].condition)
        end = start
        while end < len(units) and _runs_on(units[end].condition) == kind:
            end += 1
        if kind == LLM_CONDITION.family and llm is None:
            raise AnsweringError("the llm condition needs the base language model", key="model.llm")
        runner, prompts = llm if kind == LLM_CONDITION.family and llm is not None else (model, job.prompts)
        run = _Run(job, units[start:end], runner, prompts, kind == "image", max_new_tokens, bar)
        rows += run.answer(sizer)
        start = end
    return rows


def closed_items(job: ModelJob, stage: str, max_items: int | None) -> tuple[list[int], str | None]:
    """The items a stage that scores option labels runs (patch, knockout): those with option labels whose prompt
    fits, the first ``max_items`` of them; and a note on the others (None when none were left out). A benchmark
    with no such item is a one-line error naming the key to change."""
    labelled = [i for i, r in enumerate(job.items) if option_labels(r["answer_type"], r["options"])]
    closed, too_long = within_prompt_limit(job, labelled)
    chosen = closed[:max_items] if max_items else closed
    notes = []
    n_open = len(job.items) - len(labelled)
    if n_open:
        notes.append(f"{n_open} open-answer items left out (no option labels to score)")
    if too_long:
        notes.append(too_long)
    if len(chosen) < len(closed):
        notes.append(f"{len(closed) - len(chosen)} items beyond {stage}.max_items={max_items} left out")
    if labelled and not closed:
        raise BlindspotError(
            f"every one of the {len(labelled)} items of '{job.bench}' with option labels has a prompt longer than "
            f"{prompt_limit(job.loaded)} tokens; raise it, or leave this model out of {stage}.models",
            key="model.max_prompt_tokens",
        )
    if not chosen:
        raise BlindspotError(f"'{job.bench}' has no item with option labels to {stage}", key=f"{stage}.models")
    note = "; ".join(notes) or None
    if note:
        print(f"{stage} {job.model_name}/{job.bench}: {note}", flush=True)
    return chosen, note
