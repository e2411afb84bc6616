"""What every calibration check reads and returns: the finished results of a toy run (:class:`Context`) and one
row of the table ``blindspot calibrate`` prints (:class:`Row`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from blindspot.config import BlindspotConfig
from blindspot.stages.table import output_path
from blindspot.store.tables import read_frame


def share(mask: pl.Series) -> float:
    """The share of True in a boolean column (NaN when empty)."""
    return float(mask.cast(pl.Float64).to_numpy().mean()) if mask.len() else float("nan")


@dataclass(frozen=True)
class Row:
    model: str
    quantity: str
    planted: str
    measured: float
    tolerance: str
    ok: bool


@dataclass
class Context:
    config: BlindspotConfig
    results: Path
    items: pl.DataFrame
    """Staged toy items with their planted ``kind`` and ``prior_answer``."""
    notes: list[str] = field(default_factory=list)
    """Free-form lines printed after the table (curves, crossovers)."""

    def probes(self, model: str) -> pl.DataFrame | None:
        path = output_path(self.results, "probe", "probes", model=model, bench=self.bench)
        return read_frame(path) if path.is_file() else None

    def decay_items(self, model: str) -> pl.DataFrame:
        path = output_path(self.results, "decay", "classes", model=model, bench=self.bench)
        if not path.is_file():
            raise FileNotFoundError(f"no decay results at '{path}'; run the workflow first")
        return read_frame(path).join(self.items.select("item_id", "kind", "prior_answer", "erased_from"), on="item_id")

    def metric(self, model: str, name: str, family: str = "all", level: int = -1) -> float:
        table = read_frame(output_path(self.results, "decay", "metrics", model=model, bench=self.bench))
        found = table.filter((pl.col("metric") == name) & (pl.col("family") == family) & (pl.col("level") == level))
        if found.is_empty() or found["value"][0] is None:
            return float("nan")
        return float(found["value"][0])

    @property
    def bench(self) -> str:
        assert self.config.toy is not None
        return self.config.toy.benchmark


def planted_layers(model_path: str) -> tuple[int, ...] | None:
    """The decoder layers a toy donor was fine-tuned in (its training spec), None where every parameter was."""
    record = json.loads((Path(model_path) / "training.json").read_text())
    layers = record["spec"].get("trainable_layers")
    return tuple(layers) if layers else None
