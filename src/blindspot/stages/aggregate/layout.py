"""What the aggregate stage reads and writes: one place for the rule (``rules/aggregate.smk``) and the runner.

The aggregate job's config slice lists the configured models, benchmarks, swap pairs and patched models; its
inputs and outputs are derived from that list here, so the rule's file lists and the files the runner opens cannot
drift. Adding a model or a benchmark changes the slice and the input set, so Snakemake reruns the aggregate job
(and the new model's or benchmark's own jobs) and nothing else that is finished.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from blindspot.config import BlindspotConfig, CompareConfig, ReportConfig
from blindspot.stages.slices import SliceBase
from blindspot.stages.table import STAGES, RunNames, output_path

AGGREGATE_VERSION = 7  # 7: paired comparisons. 6: the lens and knockout sections. 5: a headline table

INPUTS: dict[str, tuple[str, str]] = {
    "staged_items": ("stage", "item_table"),
    "rejects": ("stage", "rejects"),
    "render": ("render", "store"),
    "predictions": ("predict", "predictions"),
    "decay": ("decay", "metrics"),
    "classes": ("decay", "classes"),
    "probes": ("probe", "probes"),
    "swaps": ("swap", "swaps"),
    "swap_answers": ("swap", "answers"),
    "patches": ("patch", "patches"),
    "lens": ("lens", "lens"),
    "knockouts": ("knockout", "knockout"),
}
"""Input kind -> (stage, output): the aggregate reads that output of every job of that stage (paths and the jobs
they range over come from the stage table, :data:`blindspot.stages.table.STAGES`)."""

TABLES = ("decay", "summary", "probes", "swaps", "patches", "lens", "knockouts", "comparisons", "provenance")
CSV_TABLES = TABLES
"""Every table is also written as CSV, for spreadsheets and `snakemake --report` (which shows a CSV as a table)."""


class AggregateSlice(SliceBase):
    models: list[str] = Field(description="Every configured model, sorted.")
    benchmarks: list[str] = Field(description="Every configured benchmark, sorted.")
    pairs: list[str] = Field(description="Every swap pair, sorted.")
    patch_models: list[str] = Field(description="The models the patch stage runs on, sorted.")
    lens_models: list[str] = Field([], description="The models the lens stage runs on (every model, or none).")
    knockout_models: list[str] = Field([], description="The models the knockout stage runs on, sorted.")
    compare_pairs: list[tuple[str, str]] = Field([], description="The model pairs compared (a minus b).")
    compare: CompareConfig = CompareConfig()
    seed: int = Field(0, description="The run's seed (the comparisons' bootstrap).")
    blind_families: list[str] = Field(
        ["blank", "noise", "none"], description="decay.coarse_families: the conditions that show nothing of the image."
    )
    blur_family: str
    mostly_unparsed: float = Field(description="decay.mostly_unparsed: the unparsed share a warning flags.")
    margin_threshold: float = Field(description="decay.margin_threshold: below it a right answer is not confident.")
    report: ReportConfig


def aggregate_slice(config: BlindspotConfig) -> AggregateSlice:
    return AggregateSlice(
        output_version=AGGREGATE_VERSION,
        models=sorted(config.models),
        benchmarks=sorted(config.benchmarks),
        pairs=sorted(config.swap.pairs),
        patch_models=sorted(config.patch.models),
        lens_models=sorted(config.models) if config.lens.enabled else [],
        knockout_models=sorted(config.knockout.models),
        compare_pairs=config.compare_pairs(),
        compare=config.compare,
        seed=config.seed,
        blind_families=config.decay.coarse_families,
        blur_family=config.decay.blur_family,
        mostly_unparsed=config.decay.mostly_unparsed,
        margin_threshold=config.decay.margin_threshold,
        report=config.report,
    )


def run_names(config: AggregateSlice) -> RunNames:
    return RunNames(
        models=tuple(config.models),
        benchmarks=tuple(config.benchmarks),
        pairs=tuple(config.pairs),
        patch_models=tuple(config.patch_models),
        lens_models=tuple(config.lens_models),
        knockout_models=tuple(config.knockout_models),
    )


def input_paths(config: AggregateSlice, results: str | Path = "results") -> dict[str, list[Path]]:
    """Per input kind, every file the aggregate reads: that stage output of every job of the run."""
    names = run_names(config)
    return {
        kind: [output_path(results, stage, output, **job) for job in STAGES[stage].jobs(names)]
        for kind, (stage, output) in INPUTS.items()
    }


def plot_names(config: AggregateSlice) -> dict[str, str]:
    """Every plot's file name (no suffix) -> its kind (``decay_<bench>`` is a ``decay`` plot)."""
    plots = {"c_rate": "c_rate", "classes": "classes"}
    plots |= {f"decay_{bench}": "decay" for bench in config.benchmarks}
    plots |= {f"probes_{model}": "probes" for model in config.models}
    if config.pairs:
        plots["swaps"] = "swaps"
    plots |= {f"patches_{model}": "patches" for model in config.patch_models}
    plots |= {f"lens_{model}": "lens" for model in config.lens_models}
    plots |= {f"knockout_{model}": "knockout" for model in config.knockout_models}
    if config.compare_pairs:
        plots["comparisons"] = "comparisons"
    return plots


def output_kinds(config: AggregateSlice) -> dict[str, str]:
    """Each named output -> its kind: ``table_<name>``, ``plot_<kind>`` (PNG), ``svg`` or ``report``."""
    kinds = {f"table_{name}": f"table_{name}" for name in TABLES}
    kinds |= {f"csv_{name}": f"csv_{name}" for name in CSV_TABLES}
    kinds["results_json"] = "results_json"
    for name, kind in plot_names(config).items():
        kinds[f"plot_{name}"] = f"plot_{kind}"
        kinds[f"svg_{name}"] = "svg"
    kinds["report"] = "report"
    return kinds


def output_paths(config: AggregateSlice, results: str | Path = "results") -> dict[str, Path]:
    """Named outputs: ``table_<name>``, ``plot_<name>`` (PNG; an SVG sits beside each as ``svg_<name>``) and
    ``report``."""
    root = Path(results)
    outputs = {f"table_{name}": root / "tables" / f"{name}.parquet" for name in TABLES}
    outputs |= {f"csv_{name}": root / "tables" / f"{name}.csv" for name in CSV_TABLES}
    outputs["results_json"] = root / "results.json"
    for name in plot_names(config):
        outputs[f"plot_{name}"] = root / "plots" / f"{name}.png"
        outputs[f"svg_{name}"] = root / "plots" / f"{name}.svg"
    outputs["report"] = root / "report.html"
    return outputs
