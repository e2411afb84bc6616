"""The predict step: one model on every rendered condition of every item, greedy and batched, resumable.

Work units are (item, condition) pairs: every rendered condition selected in config, then the text-only ``none``
condition (MMStar's S_wv). Units are processed in shards of whole items (:func:`blindspot.contracts.parts.item_blocks`:
about ``predict.shard_size`` units, the items of one source image together); each finished shard is written
atomically to a shard folder keyed by the job's inputs, so a killed job restarted skips what it finished. The final
table is the shards concatenated, written atomically, and the shard folder removed. A split job (``shards: N`` for
the benchmark) runs one part's shards; :func:`gather` concatenates the parts into the table the unsplit job writes.

With ``max_new_tokens: 0`` the job is margin-only: one prefill per unit and no generation; the answer of an item
with options is its most likely option label (``scored``), and an open item is left unanswered with a note.

Output: one row per (item, family, level) with the raw text, the parsed answer, the outcome, the score and, for
closed answer spaces, the log-probability of every option label at the first answer token and ``scored``, the
most likely label (the log-likelihood reading; ``parsed`` is what the model actually wrote).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from blindspot.benchmarks.registry import BenchmarkScoring
from blindspot.config import ModelConfig, PredictConfig, PromptConfig
from blindspot.contracts.conditions import LLM_CONDITION, NONE_CONDITION, Condition, resolve_condition_key
from blindspot.contracts.items import image_group
from blindspot.contracts.parts import WHOLE, Part, part_items
from blindspot.contracts.tables import PREDICTIONS_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.models.answering import predict_units, work_units
from blindspot.models.batching import BatchSizer
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel, load_language_model
from blindspot.models.prompts import PromptCache
from blindspot.stages.slices import PredictSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.store.parts import gather_tables, part_record
from blindspot.store.render import RenderStore
from blindspot.store.tables import write_table


class PredictError(BlindspotError):
    """The predict job cannot run as configured (one line)."""


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
    scoring: BenchmarkScoring,
    loaded: LoadedModel | None = None,
    progress: bool = True,
    part: Part = WHOLE,
) -> int:
    """Run the predict step (``part`` of its items); returns the number of rows written. ``loaded`` reuses an
    already loaded model."""
    config_slice = {"model": model, "predict": predict, "prompt": prompt, "scoring": scoring}
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
        scoring=scoring,
        loaded=loaded,
        progress=progress,
    )
    conditions = select_conditions(job.store, predict) + ([LLM_CONDITION] if model.llm else [])
    groups = [image_group(item["image_keys"]) for item in job.items]
    blocks = part_items(groups, max(1, -(-predict.shard_size // len(conditions))), part)
    shards = [work_units(block, conditions) for block in blocks]
    units = [unit for shard in shards for unit in shard]
    if not part.whole:
        print(f"predict {model_name}/{bench}: part {part.label}: {sum(map(len, blocks))} of {len(job.items)} items",
              flush=True)  # fmt: skip
    llm = None
    if model.llm:  # MMStar's S_t: the same questions, text only, to the base language model
        language_model = load_language_model(model)
        text = job.prompts.text
        llm = (language_model, PromptCache(language_model.processor, job.items, text))
    sizer = BatchSizer(model.batch_size, job.loaded.device.type)  # auto settles once, for every shard
    bar = job.bar(len(units), "unit")
    table = job.run_shards(
        "shard",
        shards,
        lambda _, shard: predict_units(job, shard, sizer, model.max_new_tokens, bar, llm=llm),
        PREDICTIONS_SCHEMA,
        rows=len,
        done=lambda shard: bar.update(len(shard)),
    )
    bar.close()
    sizer.report(f"predict {model_name}/{bench}")
    write_table(table, PREDICTIONS_SCHEMA, part_record(job.record, part), out)
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
        scoring=config.scoring,
        progress=job.progress,
        part=job.part,
    )
    return f"predicted {job.model} on {job.bench}{job.part_suffix}: {rows} rows"


def gather(config: PredictSlice, inputs: Paths, parts: Sequence[Paths], outputs: Paths, job: JobContext) -> str:
    """The parts' tables, concatenated in part order: the table the unsplit job writes."""
    table, record = gather_tables([paths["predictions"] for paths in parts], PREDICTIONS_SCHEMA)
    write_table(table, PREDICTIONS_SCHEMA, record, outputs["predictions"])
    return f"gathered {len(parts)} parts of predict {job.model} on {job.bench}: {table.num_rows} rows"
