"""The aggregate tables: every finished per-job output, stacked into one table per kind.

- ``decay``: one row per model x benchmark x family x level (the paper's table), from the decay stage's long table;
- ``summary``: one row per model x benchmark (C rate, chance levels, MG, ML, item-class shares);
- ``probes``, ``swaps``, ``patches``: the per-job tables stacked (they already carry model/pair and benchmark);
- ``provenance``: one row per output read, with its stage, config hash, model revision and package versions.

Every function here takes tables already read and returns a table, so each can be tested against values computed
by hand. Outputs that do not exist yet are listed in :attr:`Collected.missing`, never an error: the report says
which sections are incomplete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import zarr

from blindspot.contracts import tables as contract_tables
from blindspot.contracts.answers import OUTCOMES, UNPARSED_BY_TYPE, mostly_unparsed_warning
from blindspot.contracts.conditions import condition_label
from blindspot.contracts.tables import (
    DECAY_ITEMS_SCHEMA,
    DECAY_METRICS_SCHEMA,
    ITEMS_SCHEMA,
    KNOCKOUT_SCHEMA,
    LENS_SCHEMA,
    PATCHES_SCHEMA,
    PREDICTIONS_SCHEMA,
    PROBES_SCHEMA,
    REJECTS_SCHEMA,
    SWAP_ANSWERS_SCHEMA,
    SWAP_SCHEMA,
    interval_fields,
)
from blindspot.stages.aggregate.layout import INPUTS, AggregateSlice, input_paths
from blindspot.stages.table import STAGES
from blindspot.store.inputs import expect_output
from blindspot.store.provenance import canonical_json
from blindspot.store.tables import read_frame, read_provenance

# ------------------------------------------------------------------------------------------------ schemas


DECAY_COLUMNS: dict[str, str] = {
    "e": "identical_rate",
    "accuracy": "accuracy",
    "margin_survival": "margin_survival_rate",
    "accuracy_c": "accuracy_c1",
    **{f"share_{outcome}": f"share_{outcome}" for outcome in (*OUTCOMES, "hedged")},
    "accuracy_official": "accuracy_official",
    "accuracy_prior_corrected": "accuracy_prior_corrected",
    "yes_rate": "yes_rate",
}
"""Aggregate column -> the decay stage's metric name."""

NOTED_DECAY_COLUMNS = ("e", "accuracy", "margin_survival", "accuracy_c")
"""The decay table's rates that can be withheld (too few parsed answers, no option margins): each has a
``<column>_note`` with the reason."""

OFFICIAL_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("metric", pa.string()),
            pa.field("value", pa.float64()),
            pa.field("ci_low", pa.float64()),
            pa.field("ci_high", pa.float64()),
        ]
    )
)

DECAY_TABLE_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("level", pa.int32(), nullable=False),
        pa.field("param", pa.float32()),
        pa.field("n", pa.int64(), nullable=False),
        pa.field("n_e", pa.int64()),
        pa.field("n_c", pa.int64()),
        *(f for column in DECAY_COLUMNS for f in interval_fields(column)),
        *(pa.field(f"{column}_note", pa.string()) for column in NOTED_DECAY_COLUMNS),
        pa.field("official", OFFICIAL_TYPE),
    ]
)
"""One row per model x benchmark x family x level. ``e``: the share of items with a clean answer that give the
same answer at this level (E); ``accuracy``; ``margin_survival``: the share whose option-log-prob margin stays at or
above the threshold; ``accuracy_c``: accuracy over the C subset (items whose clean answer survives every blur
level); ``share_<outcome>``: correct, wrong, unparsed, abstain over all ``n`` items, and ``share_hedged``
(answers given beside a refusal or a hedge); ``accuracy_official``: open answers scored by the official scorer on
the raw response (null for closed answer types). ``n_e`` and ``n_c`` are the
item counts behind E and accuracy_c. ``<column>_note``: why a rate is null (fewer parsed answers than
``decay.min_parsed``, no option margins). ``official``: the benchmark's own scores where it defines them."""

SUMMARY_CLASSES = ("fine_visual", "coarse_visual", "language_prior", "uncertain", "unparsed")
ANSWER_SHARES = ("unparsed", "abstain", "hedged")
"""How the answers were read, over every item and condition: the summary's ``share_<kind>_answers``."""

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("n_items", pa.int64(), nullable=False),
        pa.field("n_rejected", pa.int64()),
        pa.field("rejected_reasons", pa.string()),
        pa.field("warning", pa.string()),
        *interval_fields("accuracy_clean"),
        pa.field("accuracy_clean_note", pa.string()),
        *interval_fields("accuracy_clean_prior_corrected"),
        pa.field("accuracy_clean_prior_corrected_note", pa.string()),
        *(f for name in ANSWER_SHARES for f in interval_fields(f"share_{name}_answers")),
        *interval_fields("c_rate"),
        pa.field("c_rate_note", pa.string()),
        *interval_fields("c_rate_margin"),
        pa.field("c_rate_margin_note", pa.string()),
        pa.field("c_chance", pa.float64()),
        pa.field("c_chance_note", pa.string()),
        *interval_fields("c_chance_empirical"),
        pa.field("c_chance_empirical_note", pa.string()),
        *interval_fields("mg"),
        pa.field("mg_note", pa.string()),
        *interval_fields("ml"),
        pa.field("ml_note", pa.string()),
        *(f for name in SUMMARY_CLASSES for f in interval_fields(f"share_{name}")),
        pa.field("share_classes_note", pa.string()),
        *interval_fields("share_vision_indispensable"),
        *interval_fields("share_judged_by_margin"),
        pa.field("n_vision_indispensable", pa.int64(), nullable=False),
    ]
)
"""One row per model x benchmark. ``warning``: set where most answers could not be read (``decay.mostly_unparsed``);
``accuracy_clean``: accuracy on the unobfuscated image (``accuracy_clean_prior_corrected``: with each option's
probability divided by the item's content-free prior, docs/method.md §9);
``share_<unparsed|abstain|hedged>_answers``: how the answers were read, over every item and condition; ``c_rate``:
the share of items (with a clean answer) whose answer survives every blur level (by identity; ``c_rate_margin`` by
evidence); every ``<metric>_note`` says why its metric is null
(too few parsed answers: ``decay.min_parsed``; no option margins; a condition that did not run);
``c_chance``: the (1/K)^levels formula;
``c_chance_empirical``: the same from the model's own answers under the uninformative conditions; ``mg``: accuracy
with the image minus without; ``ml``: multimodal leakage (null with the reason in ``ml_note`` where it could not be
measured); ``share_<class>``: the item classes (null, with the reason in ``share_classes_note``, where too few clean
answers were read to class items by); ``n_vision_indispensable``: items classed fine or coarse visual
(``share_vision_indispensable``: their share);
``n_rejected``: source rows the staging stage rejected; ``rejected_reasons``: their counts by reason
("no_image: 181")."""

PROVENANCE_SCHEMA = pa.schema(
    [
        pa.field("output", pa.string(), nullable=False),
        pa.field("stage", pa.string()),
        pa.field("model", pa.string()),
        pa.field("benchmark", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("model_path", pa.string()),
        pa.field("model_revision", pa.string()),
        pa.field("weights_sha256", pa.string()),
        pa.field("blindspot_version", pa.string()),
        pa.field("torch_version", pa.string()),
        pa.field("transformers_version", pa.string()),
        pa.field("versions", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("created", pa.string()),
        pa.field("host", pa.string()),
        pa.field("device", pa.string()),
        pa.field("gpus", pa.string()),
        pa.field("config", pa.string()),
    ]
)
"""One row per output the aggregate read. ``model`` is the model (or swap pair) name; ``versions``: every package
version as JSON; ``config``: the config slice the output was made from, as canonical JSON (its sha256 prefix is
``config_hash``), so the table alone says how to remake each output; ``git_commit`` (of blindspot, ``+dirty`` with
local changes), ``created`` (UTC), ``host``, ``device`` and ``gpus``: where and when it was made."""

COMPARISONS_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("model_a", pa.string(), nullable=False),
        pa.field("model_b", pa.string(), nullable=False),
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("level", pa.int32(), nullable=False),
        pa.field("param", pa.float32()),
        pa.field("n", pa.int64(), nullable=False),
        pa.field("accuracy_a", pa.float64()),
        pa.field("accuracy_b", pa.float64()),
        *interval_fields("difference"),
        pa.field("standard_error", pa.float64()),
        pa.field("mde", pa.float64()),
        pa.field("only_a", pa.int64(), nullable=False),
        pa.field("only_b", pa.int64(), nullable=False),
        pa.field("p_mcnemar", pa.float64()),
        pa.field("p_adjusted", pa.float64()),
        pa.field("adjust", pa.string(), nullable=False),
        pa.field("differs", pa.bool_()),
        pa.field("note", pa.string()),
    ]
)
"""One row per (pair, benchmark, condition), over the items both models answered (``kind``: ``models``, two
configured models; ``swap``, a hybrid ``<pair>:<spec>`` against its ``<pair>:base``): accuracy of each (the mean
official score), ``difference`` = a - b with its paired cluster-bootstrap interval (items resampled by source
image, both models' answers together), ``standard_error`` (bootstrap) and ``mde``: the smallest true difference
the test detects with ``compare.power`` at ``compare.alpha`` (a null result rules out differences above it).
``only_a`` / ``only_b``: items only a / only b gets right (the discordant pairs); ``p_mcnemar``: McNemar's exact
test on them; ``p_adjusted``: adjusted over the pair's benchmark x condition grid (``adjust``: holm or bh);
``differs``: ``p_adjusted < compare.alpha``."""

STACKED_SCHEMAS = {
    "probes": PROBES_SCHEMA,
    "swaps": SWAP_SCHEMA,
    "patches": PATCHES_SCHEMA,
    "lens": LENS_SCHEMA,
    "knockouts": KNOCKOUT_SCHEMA,
}
INPUT_SCHEMAS = {
    "staged_items": ITEMS_SCHEMA,
    "rejects": REJECTS_SCHEMA,
    "predictions": PREDICTIONS_SCHEMA,
    "decay": DECAY_METRICS_SCHEMA,
    "classes": DECAY_ITEMS_SCHEMA,
    "swap_answers": SWAP_ANSWERS_SCHEMA,
    **STACKED_SCHEMAS,
}
"""The contract schema of each Parquet input (the render stores are read by the item browser)."""

READ_COLUMNS = {
    "predictions": [
        "model", "benchmark", "item_id", "family", "level", "param", "parsed", "outcome", "raw_text", "score", "gold",
        "option_labels", "option_logprobs",
    ],
    "swap_answers": ["pair", "benchmark", "spec", "item_id", "family", "level", "param", "outcome", "score"],
}  # fmt: skip
"""Inputs read only in part: the item browser, the paired comparisons and the items that need the image read these
prediction columns (not the raw responses' scoring details or the prompts)."""

# ------------------------------------------------------------------------------------------------ collecting


@dataclass
class Collected:
    """Every stage output the aggregate found, read; and the ones it did not find."""

    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    """Per input kind (``decay``, ``classes``, ``probes`` ...), the per-job tables stacked."""
    paths: dict[str, list[Path]] = field(default_factory=dict)
    """Per input kind, the files found."""
    missing: dict[str, list[str]] = field(default_factory=dict)
    """Per input kind, the files not (yet) there."""

    def frame(self, kind: str) -> pl.DataFrame:
        """The stacked tables of one kind; an empty table with the kind's columns where none exists yet."""
        if kind in self.frames:
            return self.frames[kind]
        schema = pl.Schema(INPUT_SCHEMAS[kind])
        return pl.DataFrame(schema={n: schema[n] for n in READ_COLUMNS.get(kind, schema.names())})


def collect(config: AggregateSlice, results: str | Path) -> Collected:
    """Read every configured stage output under ``results`` (Parquet tables; stores are only located)."""
    found = Collected()
    for kind, paths in input_paths(config, results).items():
        found.paths[kind] = [p for p in paths if p.exists()]
        found.missing[kind] = [str(p) for p in paths if not p.exists()]
        stage, output = INPUTS[kind]
        produced = STAGES[stage].output(output)
        for path in found.paths[kind]:  # a foreign table is one line before anything is written
            expect_output(path, stage, output, getattr(contract_tables, produced.schema) if produced.schema else None)
        if kind == "render" or not found.paths[kind]:
            continue
        frames = [read_frame(p, columns=READ_COLUMNS.get(kind)) for p in found.paths[kind]]
        found.frames[kind] = pl.concat(frames, how="diagonal_relaxed")
    return found


def stacked(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """Per-job tables stacked, cast to their contract schema (an empty table where none exists yet)."""
    if frame.is_empty():
        return schema.empty_table()
    return frame.select(schema.names).to_arrow().cast(schema)


# ------------------------------------------------------------------------------------------------ decay


def decay_table(decay: pl.DataFrame) -> pa.Table:
    """The decay stage's long metrics (every model x benchmark), one row per condition."""
    if decay.is_empty():
        return DECAY_TABLE_SCHEMA.empty_table()
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    wanted = {metric: column for column, metric in DECAY_COLUMNS.items()}
    for r in decay.filter(pl.col("family") != "all").iter_rows(named=True):
        key = (r["model"], r["benchmark"], r["family"], r["level"])
        row = rows.setdefault(
            key,
            {
                "model": r["model"],
                "benchmark": r["benchmark"],
                "family": r["family"],
                "level": r["level"],
                "param": r["param"],
                "n": 0,
                "official": [],
            },
        )
        metric = r["metric"]
        if metric in wanted:
            column = wanted[metric]
            row[column], row[f"{column}_ci_low"], row[f"{column}_ci_high"] = r["value"], r["ci_low"], r["ci_high"]
            if column in NOTED_DECAY_COLUMNS:
                row[f"{column}_note"] = r["note"]
            if column == "accuracy":
                row["n"] = r["n"]
            elif column == "e":
                row["n_e"] = r["n"]
            elif column == "accuracy_c":
                row["n_c"] = r["n"]
        elif metric.startswith("official_"):
            row["official"].append(
                {
                    "metric": metric.removeprefix("official_"),
                    "value": r["value"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                }
            )
    ordered = sorted(rows.values(), key=lambda r: (r["model"], r["benchmark"], r["family"], r["level"]))
    return pa.Table.from_pylist(ordered, schema=DECAY_TABLE_SCHEMA)


# ------------------------------------------------------------------------------------------------ summary


def summary_table(
    decay: pl.DataFrame, classes: pl.DataFrame, rejects: pl.DataFrame, mostly_unparsed: float = 0.5
) -> pa.Table:
    """One row per model x benchmark from the decay stage's summary rows (family ``all``) and item classes;
    ``warning`` flags a benchmark whose share of unparsed answers exceeds ``mostly_unparsed``."""
    if decay.is_empty():
        return SUMMARY_SCHEMA.empty_table()
    rejected = (
        {} if rejects.is_empty() else dict(rejects.group_by("benchmark").len().iter_rows())  # benchmark -> count
    )
    reasons: dict[str, str] = {}
    if not rejects.is_empty():
        counted = (
            rejects.group_by("benchmark", "reason")
            .len()
            .sort("benchmark", "len", "reason", descending=[False, True, False])
        )
        for (bench,), group in counted.group_by("benchmark", maintain_order=True):
            reasons[bench] = ", ".join(f"{r}: {n}" for r, n in group.select("reason", "len").iter_rows())
    out = []
    overall = decay.filter(pl.col("family") == "all")
    for (model, bench), group in overall.group_by(["model", "benchmark"], maintain_order=True):
        row: dict[str, Any] = {"model": model, "benchmark": bench, "n_rejected": rejected.get(bench, 0),
                               "rejected_reasons": reasons.get(bench)}  # fmt: skip
        for r in group.iter_rows(named=True):
            name = r["metric"]
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = r["value"], r["ci_low"], r["ci_high"]
            if f"{name}_note" in SUMMARY_SCHEMA.names:
                row[f"{name}_note"] = r["note"]
            if name == "share_fine_visual":
                row["share_classes_note"] = r["note"]
        items = classes.filter((pl.col("model") == model) & (pl.col("benchmark") == bench))
        row["n_items"] = items.height
        row["n_vision_indispensable"] = int(items["vision_indispensable"].sum()) if items.height else 0
        by_type = {
            r["metric"].removeprefix(UNPARSED_BY_TYPE): r["value"]
            for r in group.iter_rows(named=True)
            if r["metric"].startswith(UNPARSED_BY_TYPE)
        }
        unparsed = row.get("share_unparsed_answers")
        row["warning"] = mostly_unparsed_warning(model, bench, unparsed, mostly_unparsed, by_type)
        out.append({name: row.get(name) for name in SUMMARY_SCHEMA.names})
    out.sort(key=lambda r: (r["benchmark"], r["model"]))
    return pa.Table.from_pylist(out, schema=SUMMARY_SCHEMA)


# ------------------------------------------------------------------------------------------------ provenance


def _store_provenance(path: Path) -> dict[str, Any]:
    record = zarr.open_group(store=str(path), mode="r").attrs.get("provenance")
    return dict(record) if isinstance(record, dict) else {}


def provenance_table(found: Collected, results: str | Path) -> pa.Table:
    """One row per output read: where it came from (stage, config hash, model and weights, package versions)."""
    rows = []
    for kind, paths in found.paths.items():
        for path in paths:
            record = _store_provenance(path) if path.is_dir() else read_provenance(path)
            model: dict[str, Any] = record["model"] if isinstance(record.get("model"), dict) else {}
            versions = record.get("versions", {})
            rows.append(
                {
                    "output": str(path.relative_to(results)) if path.is_relative_to(results) else str(path),
                    "stage": record.get("stage", kind),
                    "model": record.get("model_name"),
                    "benchmark": record.get("benchmark"),
                    "config_hash": record.get("config_hash"),
                    "model_path": model.get("model_path"),
                    "model_revision": model.get("revision") or model.get("hub_id"),
                    "weights_sha256": record.get("weights_sha256"),
                    "blindspot_version": versions.get("blindspot"),
                    "torch_version": versions.get("torch"),
                    "transformers_version": versions.get("transformers"),
                    "versions": json.dumps(versions, sort_keys=True),
                    "git_commit": record.get("git_commit"),
                    "created": record.get("created"),
                    "host": record.get("host"),
                    "device": model.get("device", "cpu" if record else None),
                    "gpus": ",".join(model["gpus"]) if model.get("gpus") else None,
                    "config": canonical_json(record["config"]) if "config" in record else None,
                }
            )
    rows.sort(key=lambda r: r["output"])
    return pa.Table.from_pylist(rows, schema=PROVENANCE_SCHEMA)


def level_names(decay: pl.DataFrame) -> dict[tuple[str, str], str]:
    """(benchmark, condition key ``family/level``) -> the condition as a reader knows it ("blur k=61"), from the
    decay table's params; the probe and patch tables name conditions by key."""
    if decay.is_empty():
        return {}
    rows = decay.select("benchmark", "family", "level", "param").unique()
    return {
        (r["benchmark"], f"{r['family']}/{r['level']}"): condition_label(r["family"], r["level"], r["param"])
        for r in rows.iter_rows(named=True)
    }


def with_level_names(frame: pl.DataFrame, names: dict[tuple[str, str], str], columns: tuple[str, ...]) -> pl.DataFrame:
    """``frame`` with each condition-key column (``source``, ``target``) holding the name a reader knows
    (:func:`level_names`); a key without a name stays as it is."""
    if frame.is_empty():
        return frame
    mapping = pl.DataFrame(
        [{"benchmark": b, "key": k, "name": n} for (b, k), n in names.items()],
        schema={"benchmark": pl.String, "key": pl.String, "name": pl.String},
    )
    for column in columns:
        named = mapping.rename({"key": column, "name": f"{column}_name"})
        frame = (
            frame.join(named, on=["benchmark", column], how="left", maintain_order="left")
            .with_columns(pl.coalesce(f"{column}_name", column).alias(column))
            .drop(f"{column}_name")
        )
    return frame


def condition_labels() -> pl.Expr:
    """Each row's condition named by its kernel or block size (:func:`condition_label`), from family, level, param."""
    return pl.struct("family", "level", "param").map_elements(
        lambda r: condition_label(r["family"], r["level"], r["param"]), return_dtype=pl.String
    )


def official_wide(decay: pl.DataFrame, family: str) -> pl.DataFrame:
    """The benchmarks' official scores along one family's levels, for reading: one row per model x benchmark x
    metric, one column per level (``k=<param>``) holding "value [low, high]". The long form is the decay table's
    ``official`` column."""
    if decay.is_empty():
        return pl.DataFrame()
    rows = (
        decay.filter(pl.col("family") == family)
        .select("model", "benchmark", "family", "level", "param", "official")
        .explode("official")
        .drop_nulls("official")
        .unnest("official")
    )
    if rows.is_empty():
        return pl.DataFrame()

    def text(value: float | None, low: float | None, high: float | None) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")

    rows = rows.with_columns(
        pl.struct("value", "ci_low", "ci_high")
        .map_elements(lambda r: text(r["value"], r["ci_low"], r["ci_high"]), return_dtype=pl.String)
        .alias("shown"),
        condition_labels().alias("column"),
    ).sort("level")
    return rows.pivot(on="column", index=["model", "benchmark", "metric"], values="shown", maintain_order=True)


def attention_note(lens: pl.DataFrame) -> str:
    """Why a lens table has no attention rows: the stage's note ("attention not read: ..."), or a plain default."""
    notes = (part for note in lens["note"].drop_nulls().to_list() for part in note.split("; "))
    return next((part for part in notes if part.startswith("attention")), "attention not read")


def level_order(key: str) -> tuple[int, str, int]:
    """Clean first, then the ladder in order: a condition key ``family/level`` sorted by its level number."""
    family, _, level = key.partition("/")
    number = int(level) if level.lstrip("-").isdigit() else 0
    return (number != 0, family, number)
