"""The config slices: the part of the config each stage's jobs receive.

A slice is a pydantic model. Snakemake passes it to the job as JSON (the rule's ``params``), so a job reruns exactly
when its own slice changes, and the stage records the slice's hash in its outputs' provenance. Every slice carries
the stage's **output version** (:class:`SliceBase`), bumped in the stage table when the stage's outputs change
meaning. A slice field named after a top-level config section (``decay``, ``seed``, ``prompt``, ...) is filled from
it; the others come from :data:`FIELD_SOURCES` (``model`` and ``benchmark`` are the entries the job's wildcards name).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from blindspot.benchmarks.generic import PairedOfficial
from blindspot.benchmarks.registry import BenchmarkScoring
from blindspot.config import (
    BenchmarkConfig,
    BlindspotConfig,
    DecayConfig,
    ExtractConfig,
    KnockoutConfig,
    LensConfig,
    ModelConfig,
    PatchConfig,
    PredictConfig,
    ProbeConfig,
    PromptConfig,
    RenderConfig,
    SwapConfig,
    SwapPair,
)
from blindspot.config_base import StrictModel


class SliceBase(StrictModel):
    output_version: int = Field(description="The stage's output version; bumped when its outputs change meaning.")


class StageSlice(SliceBase):
    benchmark: BenchmarkConfig
    image_folder: str | None = Field(
        None, description="Fingerprint of the benchmark's image folder (names, sizes, mtimes): images read by path."
    )


class RenderSlice(SliceBase):
    render: RenderConfig
    seed: int


class PredictSlice(SliceBase):
    model: ModelConfig
    predict: PredictConfig
    prompt: PromptConfig
    scoring: BenchmarkScoring = Field(description="The benchmark's adapter and open_scorer.")


class DecaySlice(SliceBase):
    decay: DecayConfig
    seed: int
    scoring: BenchmarkScoring = Field(description="The benchmark's adapter and open_scorer.")
    official: PairedOfficial | None = Field(
        None, description="Official aggregates over groups of items the benchmark's config declares (MME's acc+)."
    )


class ExtractSlice(SliceBase):
    model: ModelConfig
    extract: ExtractConfig
    prompt: PromptConfig
    scoring: BenchmarkScoring = Field(description="The benchmark's adapter and open_scorer.")


class ProbeSlice(SliceBase):
    probe: ProbeConfig
    seed: int


class SwapSlice(SliceBase):
    pair: SwapPair
    base: ModelConfig
    donor: ModelConfig | None
    swap: SwapConfig = Field(description="The swap settings, with this job's pair only.")
    prompt: PromptConfig
    prior_field: str | None
    seed: int
    scoring: BenchmarkScoring = Field(description="The benchmark's adapter and open_scorer.")


class PatchSlice(SliceBase):
    model: ModelConfig
    patch: PatchConfig = Field(description="The patch settings (``models``: this job's model only).")
    prompt: PromptConfig
    seed: int
    scoring: BenchmarkScoring = Field(description="The benchmark's adapter and open_scorer.")


class LensSlice(SliceBase):
    model: ModelConfig
    lens: LensConfig
    prior_field: str | None = Field(description="probe.prior_field (per benchmark): where items name a prior answer.")
    seed: int


class KnockoutSlice(SliceBase):
    model: ModelConfig
    knockout: KnockoutConfig = Field(description="The knockout settings (``models``: this job's model only).")
    prompt: PromptConfig
    seed: int
    scoring: BenchmarkScoring = Field(description="The benchmark's adapter and open_scorer.")


def folder_fingerprint(path: str | Path) -> str:
    """A cheap fingerprint of every file under a folder: relative names, sizes and modification times."""
    root = Path(path)
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            file = Path(dirpath) / name
            stat = file.stat()
            digest.update(f"{file.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


Wildcards = Mapping[str, str]


def _benchmark(config: BlindspotConfig, bench: str) -> Any:
    """A benchmark's entry as its jobs see it: how its jobs are split (``shards``) changes none of their outputs."""
    return config.benchmarks[bench].model_copy(update={"shards": 1})


def _model(config: BlindspotConfig, name: str) -> ModelConfig:
    """A model's entry as its jobs see it: the cluster resources they ask for change none of their outputs."""
    return config.models[name].model_copy(update={"resources": {}})


FIELD_SOURCES: dict[str, Callable[[BlindspotConfig, Wildcards], Any]] = {
    "benchmark": lambda config, w: _benchmark(config, w["bench"]),
    "scoring": lambda config, w: config.benchmarks[w["bench"]].scoring(),
    "official": lambda config, w: config.benchmarks[w["bench"]].official_groups(),
    "model": lambda config, w: _model(config, w["model"]),
    "image_folder": lambda config, w: (
        folder_fingerprint(folder)
        if (folder := config.benchmarks[w["bench"]].image_folder()) and folder.is_dir()
        else None
    ),
    "pair": lambda config, w: config.swap.pairs[w["pair"]],
    "base": lambda config, w: _model(config, config.swap.pairs[w["pair"]].base),
    "donor": lambda config, w: (
        _model(config, donor) if (donor := config.swap.pairs[w["pair"]].donor) is not None else None
    ),
    "swap": lambda config, w: config.swap.model_copy(update={"pairs": {w["pair"]: config.swap.pairs[w["pair"]]}}),
    "prior_field": lambda config, w: config.probe_for(w["bench"]).prior_field,
    "render": lambda config, w: config.render_for(w["bench"]),
    "probe": lambda config, w: config.probe_for(w["bench"]),
    "patch": lambda config, w: config.patch.model_copy(update={"models": [w["model"]]}),
    "knockout": lambda config, w: config.knockout.model_copy(update={"models": [w["model"]]}),
}
"""Slice fields that are not a top-level config key of the same name."""

SLICE_KEYS = {"model": ("model", "models"), "benchmark": ("bench", "benchmarks"), "pair": ("pair", "swap.pairs")}
"""A slice key ``model.path`` is the user's ``models.<model>.path``."""


def user_key(line: str, wildcards: Wildcards) -> str:
    """``model.path: ...`` -> ``models.qwen.path: ...`` (slice keys to the user's config keys)."""
    key, colon, message = line.partition(":")
    first, dot, rest = key.partition(".")
    if first in SLICE_KEYS and SLICE_KEYS[first][0] in wildcards:
        wildcard, section = SLICE_KEYS[first]
        return f"{section}.{wildcards[wildcard]}{dot}{rest}{colon}{message}"
    return line
