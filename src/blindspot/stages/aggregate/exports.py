"""What other tools read: ``results.json`` beside the report (where lmms-eval users look for a run's numbers) and
CSV twins of the summary and decay tables (spreadsheets; ``snakemake --report`` shows a CSV as a table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

HEADLINE = (
    "accuracy_clean",
    "c_rate",
    "c_rate_margin",
    "c_chance",
    "c_chance_empirical",
    "mg",
    "ml",
    "share_fine_visual",
    "share_coarse_visual",
    "share_language_prior",
    "share_uncertain",
    "share_unparsed",
    "share_vision_indispensable",
    "share_unparsed_answers",
    "share_abstain_answers",
    "share_hedged_answers",
)
"""The per model x benchmark figures ``results.json`` carries, each with its interval and the note of a null."""


def _figure(row: dict[str, Any], metric: str) -> dict[str, Any]:
    out = {"value": row.get(metric), "ci_low": row.get(f"{metric}_ci_low"), "ci_high": row.get(f"{metric}_ci_high")}
    note = row.get(f"{metric}_note") or (row.get("share_classes_note") if metric.startswith("share_") else None)
    if out["value"] is None and note:
        out["note"] = note
    return out


def results_json(summary: pl.DataFrame, provenance: pl.DataFrame, record: dict[str, Any]) -> dict[str, Any]:
    """Every headline figure with its interval, per benchmark and model, and what made them: package versions, the
    git commit, the date, the devices the models ran on and the config hash of the aggregate."""
    results: dict[str, dict[str, Any]] = {}
    for row in summary.sort("benchmark", "model").iter_rows(named=True):
        entry: dict[str, Any] = {metric: _figure(row, metric) for metric in HEADLINE}
        entry |= {"n_items": row["n_items"], "n_vision_indispensable": row["n_vision_indispensable"],
                  "warning": row.get("warning")}  # fmt: skip
        results.setdefault(row["benchmark"], {})[row["model"]] = entry
    devices: dict[str, list[str]] = {}
    if provenance.height:
        runs = provenance.filter(pl.col("stage") == "predict").select("model", "device", "gpus", "host").unique()
        for r in runs.sort("model").iter_rows(named=True):
            where = f"{r['device']} ({r['gpus']})" if r["gpus"] else str(r["device"])
            devices.setdefault(r["model"], []).append(f"{where} on {r['host']}")
    return {
        "results": results,
        "intervals": "95% cluster-bootstrap intervals over source images (decay.confidence)",
        "config_hash": record["config_hash"],
        "git_commit": record.get("git_commit"),
        "date": record.get("created"),
        "versions": record.get("versions"),
        "devices": devices,
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=str) + "\n")


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    """A table as CSV: nested columns (lists, structs) as JSON text."""
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    flat = frame.with_columns(
        pl.col(name).map_elements(lambda v: json.dumps(v, default=str), return_dtype=pl.String) for name in nested
    )
    flat.write_csv(path)
