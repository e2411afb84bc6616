"""A benchmark that needs the image: the items no model of the run answers right without an informative image.

An item is *solved blind* by a model when, at a condition that carries no information about the image
(``decay.coarse_families``: a blank image, noise, no image), the model answers it right *with evidence*: the gold
option leads the best other option by at least ``decay.margin_threshold`` nats (a right answer that is a coin flip
is not knowledge). Where the model's answer was not scored on options (open answers), a right answer counts. The
export keeps the items no model solves blind, and records per item how many models answer it right with no image
at all (MMStar's count of "solvable without the image").

``blindspot export`` writes them per benchmark as a dataset others can run (docs/method.md §10):

- ``data/test-00000-of-00001.parquet`` in a Hugging Face dataset's layout (``id``, ``question``, ``options``,
  ``answer``, ``answer_type``, ``image``: a list of ``{bytes, path}`` image structs, ``n_models_blind``, ``metadata``);
- ``README.md``, its datasheet (a dataset card: counts per class, the models and conditions it was judged on, the
  thresholds, the date);
- ``<bench>_needs_image.yaml`` and ``utils.py``: an lmms-eval task over the local parquet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from blindspot.contracts.answers import option_margin
from blindspot.store.atomic import atomic_output
from blindspot.store.tables import read_frame

PREDICTION_COLUMNS = ["model", "item_id", "family", "outcome", "gold", "option_labels", "option_logprobs"]
EXPORT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("options", pa.list_(pa.string())),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("answer_type", pa.string(), nullable=False),
        pa.field("image", pa.list_(pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())]))),
        pa.field("n_models_blind", pa.int32(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Judged:
    """Per item of one benchmark: solved blind by any model, and how many models answer it right with no image."""

    items: pl.DataFrame
    """``item_id``, ``solved_blind`` (bool), ``blind_models`` (the models that solve it blind), ``n_models_blind``."""
    models: list[str]
    families: list[str]


def gold_margin(labels: list[str] | None, logprobs: list[float] | None, gold: str) -> float | None:
    """log P(gold) minus the best other option's, where the options were scored and gold is one of them."""
    if not labels or logprobs is None:
        return None
    return option_margin(dict(zip(labels, logprobs, strict=True)), gold)


def judge(predictions: pl.DataFrame, families: list[str], threshold: float) -> Judged:
    """Which items each model answers right, with evidence, at a condition of ``families``."""
    blind = predictions.filter(pl.col("family").is_in(families))
    margins = [
        gold_margin(r["option_labels"], r["option_logprobs"], r["gold"])
        for r in blind.select("option_labels", "option_logprobs", "gold").iter_rows(named=True)
    ]
    blind = blind.with_columns(pl.Series("margin", margins, dtype=pl.Float64)).with_columns(
        (
            (pl.col("outcome") == "correct")
            & (pl.col("margin").is_null() | (pl.col("margin") >= threshold))
        ).alias("solved")
    )  # fmt: skip
    per_model = blind.group_by("item_id", "model").agg(
        pl.col("solved").any().alias("solved"),
        ((pl.col("family") == "none") & (pl.col("outcome") == "correct")).any().alias("no_image_right"),
    )
    items = per_model.group_by("item_id").agg(
        pl.col("solved").any().alias("solved_blind"),
        pl.col("model").filter(pl.col("solved")).sort().alias("blind_models"),
        pl.col("no_image_right").sum().cast(pl.Int32).alias("n_models_blind"),
    )
    every = predictions.select("item_id").unique()
    items = every.join(items, on="item_id", how="left").with_columns(
        pl.col("solved_blind").fill_null(False), pl.col("n_models_blind").fill_null(0)
    )
    return Judged(items.sort("item_id"), sorted(predictions["model"].unique().to_list()), families)


def read_predictions(paths: list[Path]) -> pl.DataFrame:
    return pl.concat([read_frame(p).select(PREDICTION_COLUMNS) for p in paths]) if paths else pl.DataFrame()


def export_benchmark(
    bench: str,
    judged: Judged,
    items_path: Path,
    images_path: Path,
    out: Path,
    threshold: float,
) -> dict[str, Any]:
    """Write the benchmark that needs the image into ``out`` (module docstring); return its datasheet counts."""
    keep = judged.items.filter(~pl.col("solved_blind"))
    items = read_frame(items_path).join(keep.select("item_id", "n_models_blind"), on="item_id", how="inner")
    wanted = {k for keys in items["image_keys"].to_list() for k in keys}
    images = read_frame(images_path).filter(pl.col("image_sha256").is_in(list(wanted)))
    data = dict(zip(images["image_sha256"].to_list(), images["data"].to_list(), strict=True))
    rows = [
        {"id": r["item_id"], "question": r["question"], "options": r["options"], "answer": r["answer"],
         "answer_type": r["answer_type"], "image": [{"bytes": data[k], "path": f"{k}.png"} for k in r["image_keys"]],
         "n_models_blind": r["n_models_blind"], "metadata": r["metadata"]}
        for r in items.sort("source_index").iter_rows(named=True)
    ]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    parquet = out / "data" / "test-00000-of-00001.parquet"
    parquet.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(parquet) as tmp:
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    counts = {
        "benchmark": bench,
        "items_judged": judged.items.height,
        "items_exported": len(rows),
        "models": judged.models,
        "conditions": judged.families,
        "margin_threshold": threshold,
        "exported_by_answer_type": dict(items.group_by("answer_type").len().sort("answer_type").iter_rows()),
        "excluded_by_model": {m: int(judged.items["blind_models"].list.contains(m).sum()) for m in judged.models},
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    (out / "README.md").write_text(datasheet(bench, counts), encoding="utf-8")
    (out / f"{bench}_needs_image.yaml").write_text(task_yaml(bench, out), encoding="utf-8")
    (out / "utils.py").write_text(TASK_UTILS, encoding="utf-8")
    (out / "datasheet.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
    return counts


def datasheet(bench: str, counts: dict[str, Any]) -> str:
    """The dataset card: what was kept, judged on what, by which rule."""
    models = ", ".join(counts["models"])
    by_type = "\n".join(f"| {t} | {n} |" for t, n in counts["exported_by_answer_type"].items())
    excluded = "\n".join(f"| {m} | {n} |" for m, n in counts["excluded_by_model"].items())
    return f"""---
configs:
- config_name: default
  data_files:
  - split: test
    path: data/test-*.parquet
---
# {bench}: the items that need the image

Exported by blindspot on {counts["date"]}: the {counts["items_exported"]} of {counts["items_judged"]} items of
`{bench}` that no model of the run ({models}) answers right without an informative image.

**Rule.** A model solves an item blind when, at a condition that shows nothing of the image
({", ".join(counts["conditions"])}), it answers right with the gold option leading the best other option by at
least {counts["margin_threshold"]} nats (a right answer where the options were not scored counts too). Items any
model solves blind are left out. `n_models_blind`: how many of the models answer the item right with no image at
all (MMStar's count).

| answer type | items kept |
|---|---|
{by_type}

| model | items it solves blind (left out) |
|---|---|
{excluded}

Columns: `id`, `question`, `options`, `answer`, `answer_type`, `image` (a list of image structs), `n_models_blind`,
`metadata` (the source item's other columns, as JSON). Run it with lmms-eval (`{bench}_needs_image.yaml`) or with
blindspot's generic adapter (`columns: {{id: id, options: options, image: image, metadata: [n_models_blind]}}`).
"""


def task_yaml(bench: str, out: Path) -> str:
    """An lmms-eval task over the exported parquet (a local dataset; lmms-eval's generate_until with its utils)."""
    return f"""task: {bench}_needs_image
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {(out / "data" / "test-00000-of-00001.parquet").resolve()}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
process_results: !function utils.process_results
generation_kwargs:
  max_new_tokens: 16
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0.0
"""


TASK_UTILS = '''"""lmms-eval helpers for a blindspot export: images from their structs, the question with its
lettered options."""

import io

from PIL import Image


def doc_to_visual(doc):
    return [Image.open(io.BytesIO(image["bytes"])).convert("RGB") for image in doc["image"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    options = doc.get("options") or []
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    listed = "".join(f"\\n{letters[i]}. {o}" for i, o in enumerate(options))
    suffix = "\\nAnswer with the option's letter." if options else "\\nAnswer with a single word or phrase."
    return doc["question"] + listed + suffix


def process_results(doc, results):
    answer = results[0].strip().rstrip(".").strip()
    return {"exact_match": float(answer.lower() == str(doc["answer"]).lower())}
'''
