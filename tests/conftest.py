"""Shared fixtures: fixture benchmarks written by blindspot.fixtures, and helpers to run the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-snapshots", action="store_true", help="rewrite tests/snapshots from the current code")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny model families, built once per test session."""
    from blindspot.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {family: build_tiny_model(family, root / family) for family in ("qwen2_5_vl", "llava_next")}


@pytest.fixture(scope="session")
def small_benchmark(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A staged and rendered MC benchmark: 6 items, conditions blur/0, blur/1 (k=25), blank/1, noise/1."""
    from blindspot.config import RenderConfig
    from blindspot.fixtures import write_shapes_benchmark
    from blindspot.stages.render.run import render_benchmark

    root = tmp_path_factory.mktemp("small")
    path = write_shapes_benchmark(root / "src", n_items=6, seed=11, bad_rows=False)
    stage_entry("small", generic_entry(path), root / "staged")
    render = RenderConfig.model_validate(
        {"resize": {"longest_side": 112}, "blur": {"kernels": [1, 25]}, "pixelate": {"enabled": False}}
    )
    render_benchmark(root / "staged" / "images.parquet", render, 0, root / "small.zarr", workers=1, progress=False)
    return {"items": root / "staged" / "items.parquet", "render": root / "small.zarr", "root": root}


@pytest.fixture
def shapes_parquet(tmp_path: Path) -> Path:
    from blindspot.fixtures import write_shapes_benchmark

    return write_shapes_benchmark(tmp_path / "shapes", n_items=12, seed=1, fmt="parquet", image_mode="struct")


def stage_entry(name: str, entry: dict[str, Any], folder: Path) -> Any:
    """Stage a benchmark config entry into ``folder`` (items/images/rejects.parquet); returns the summary."""
    from blindspot.benchmarks.generic import GenericBenchmark
    from blindspot.stages.staging import stage_benchmark, staged_paths

    return stage_benchmark(name, GenericBenchmark.model_validate(entry), staged_paths(folder))


def slice_json(stage: str, **sections: Any) -> str:
    """A stage's config slice as JSON, with the stage's current output version."""
    from blindspot.stages.table import STAGES
    from blindspot.store.provenance import canonical_json

    spec = STAGES[stage]
    if "scoring" in spec.slice.model_fields:  # the fixtures' benchmarks use the generic adapter
        sections.setdefault("scoring", {"adapter": "generic", "open_scorer": "textvqa"})
    return canonical_json(spec.slice.model_validate({"output_version": spec.version, **sections}))


def generic_entry(path: Path, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "adapter": "generic",
        "path": str(path),
        "answer_type": "multiple_choice",
        "columns": {"id": "question_id", "options": "options"},
    }
    entry.update(overrides)
    return entry


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, package: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow in ``workdir`` with ``workdir/config.yaml``; the venv's bin on PATH.
    ``package``: a folder holding another copy of the ``blindspot`` package, imported instead of the installed one."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if package is not None:
        env["PYTHONPATH"] = str(package)
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def reduced_toy_config(models: list[str], source: str = "config/config.yaml") -> dict[str, Any]:
    """The reduced toy world of `make test` and `make mutants` (as a config mapping): 240 items, the named toy
    models (absolute paths) and the swap pairs and patched models among them, no pixelation, 200 resamples.
    ``source``: the toy config the models come from (config/toy-llava.yaml for the LLaVA-NeXT trio)."""
    config = yaml.safe_load((REPO / source).read_text())
    config["models"] = {m: {**config["models"][m], "path": str(REPO / config["models"][m]["path"])} for m in models}
    config["toy"]["models"] = {m: role for m, role in config["toy"]["models"].items() if m in models}
    config["toy"]["lens_models"] = {m: role for m, role in config["toy"].get("lens_models", {}).items() if m in models}
    config["swap"]["pairs"] = {
        name: pair for name, pair in config["swap"]["pairs"].items() if {pair["base"], pair["donor"]} <= set(models)
    }
    config["patch"]["models"] = [m for m in config["patch"]["models"] if m in models]
    if "knockout" in config:
        config["knockout"]["models"] = [m for m in config["knockout"]["models"] if m in models]
    config["toy"]["n_items"] = 240
    config["render"]["pixelate"] = {"enabled": False}
    config["decay"]["bootstrap"] = 200
    return config


def with_a_long_question(items_path: Path, out: Path, words: int = 3000) -> tuple[Path, str]:
    """A copy of an items table whose first question is ``words`` words long; returns (path, that item's id)."""
    import polars as pl

    from blindspot.contracts.tables import ITEMS_SCHEMA
    from blindspot.store.tables import read_provenance, write_table

    items = pl.read_parquet(items_path)
    first = pl.int_range(pl.len()) == 0
    long = items.with_columns(
        pl.when(first).then(pl.lit("why " * words)).otherwise(pl.col("question")).alias("question")
    )
    write_table(long.to_arrow(), ITEMS_SCHEMA, read_provenance(items_path), out)
    return out, str(long["item_id"][0])
