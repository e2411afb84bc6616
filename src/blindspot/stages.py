"""The table of pipeline stages: the one place that says what each stage receives, reads, writes and runs.

Each :class:`Stage` names

- its **slice**: the pydantic model of the part of the config it receives (as JSON, the rule's ``params``), so a
  job reruns exactly when its own slice changes. Every slice carries the stage's **output version**, bumped when the
  stage's outputs change meaning, so that new code that changes outputs reruns the stage's jobs;
- its **wildcards** (``bench``, ``model``), its named **inputs** (each with the stage that produces it) and named
  **outputs**: explicit paths, never derived from a directory name;
- its **runner**, ``module:function``, called as ``run(slice, inputs, outputs, job)``. It is imported only when the
  stage runs, so building the Snakemake DAG or parsing a slice never imports torch.

From this table come the CLI's stage subcommands (:mod:`blindspot.cli`), the slice each rule passes
(``rules/common.smk``: ``slice_param``) and each rule's shell command (``cli_command``). A new stage is one module
with a ``run`` function, one entry here, and one thin rule (``docs/adding-a-stage.md``).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field, TypeAdapter, ValidationError

from blindspot.benchmarks.registry import BenchmarkScoring
from blindspot.config import (
    BenchmarkConfig,
    BlindspotConfig,
    DecayConfig,
    ExtractConfig,
    ModelConfig,
    PatchConfig,
    PredictConfig,
    ProbeConfig,
    PromptConfig,
    RenderConfig,
    SwapConfig,
    SwapPair,
    format_validation_error,
)
from blindspot.config_base import StrictModel
from blindspot.errors import BlindspotError
from blindspot.provenance import canonical_json

# ------------------------------------------------------------------------------------------------ slices


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
_FIELD_SOURCES: dict[str, Callable[[BlindspotConfig, Wildcards], Any]] = {
    "benchmark": lambda config, w: config.benchmarks[w["bench"]],
    "scoring": lambda config, w: config.benchmarks[w["bench"]].scoring(),
    "model": lambda config, w: config.models[w["model"]],
    "image_folder": lambda config, w: (
        folder_fingerprint(folder)
        if (folder := config.benchmarks[w["bench"]].image_folder()) and folder.is_dir()
        else None
    ),
    "pair": lambda config, w: config.swap.pairs[w["pair"]],
    "base": lambda config, w: config.models[config.swap.pairs[w["pair"]].base],
    "donor": lambda config, w: (
        config.models[donor] if (donor := config.swap.pairs[w["pair"]].donor) is not None else None
    ),
    "swap": lambda config, w: config.swap.model_copy(update={"pairs": {w["pair"]: config.swap.pairs[w["pair"]]}}),
    "prior_field": lambda config, w: config.probe_for(w["bench"]).prior_field,
    "render": lambda config, w: config.render_for(w["bench"]),
    "probe": lambda config, w: config.probe_for(w["bench"]),
    "patch": lambda config, w: config.patch.model_copy(update={"models": [w["model"]]}),
}
"""Slice fields that are not a top-level config key of the same name."""

_SLICE_KEYS = {"model": ("model", "models"), "benchmark": ("bench", "benchmarks"), "pair": ("pair", "swap.pairs")}
"""A slice key ``model.path`` is the user's ``models.<model>.path``."""

# ------------------------------------------------------------------------------------------------ stages


@dataclass(frozen=True)
class JobContext:
    """What a stage's runner knows about its job besides the slice and the paths."""

    stage: str
    wildcards: Mapping[str, str] = field(default_factory=dict)
    threads: int = 1
    progress: bool = True

    @property
    def bench(self) -> str:
        return self.wildcards["bench"]

    @property
    def model(self) -> str:
        return self.wildcards["model"]


Paths = Mapping[str, Path]


class Runner(Protocol):
    def __call__(self, config: Any, inputs: Paths, outputs: Paths, job: JobContext) -> str: ...


@dataclass(frozen=True)
class Stage:
    name: str
    slice: type[SliceBase]
    version: int
    wildcards: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]
    """(input name, the stage that produces it)."""
    outputs: tuple[str, ...]
    runner: str
    """``module:function`` with the :class:`Runner` signature; imported when the stage runs."""
    help: str

    def build_slice(self, config: BlindspotConfig, wildcards: Wildcards) -> SliceBase:
        values: dict[str, Any] = {"output_version": self.version}
        for name in self.slice.model_fields:
            if name == "output_version":
                continue
            source = _FIELD_SOURCES.get(name)
            values[name] = source(config, wildcards) if source else getattr(config, name)
        return self.slice.model_validate(values)

    def slice_json(self, config: BlindspotConfig, wildcards: Wildcards) -> str:
        return canonical_json(self.build_slice(config, wildcards))

    def parse_slice(self, text: str) -> SliceBase:
        """Validate a slice; errors name the slice key (``model.path``; :func:`user_key` gives the user's)."""
        try:
            parsed = TypeAdapter(self.slice).validate_json(text)
        except ValidationError as error:
            raise BlindspotError(format_validation_error(error).splitlines()[0]) from None
        if parsed.output_version != self.version:
            raise BlindspotError(
                f"the {self.name} slice was built for output version {parsed.output_version}, but this blindspot "
                f"writes version {self.version}: rerun through snakemake, which rebuilds the slice"
            )
        return parsed

    def load_runner(self) -> Runner:
        module, _, function = self.runner.partition(":")
        runner: Runner = getattr(importlib.import_module(module), function)
        return runner

    def cli_command(self) -> str:
        """The rule's shell command: ``blindspot <stage>`` with its wildcards, slice, inputs, outputs and log."""
        parts = [f"blindspot {self.name}"]
        parts += [f"--{w} {{wildcards.{w}:q}}" for w in self.wildcards]
        parts.append("--slice {params.slice:q}")
        parts += [f"--{option(name)} {{input.{name}:q}}" for name, _ in self.inputs]
        parts += [f"--{option(name)} {{output.{name}:q}}" for name in self.outputs]
        parts.append("--threads {threads} > {log:q} 2>&1")
        # The job's last line (its summary, or its one-line error) also goes to the console, where the user
        # looks; the whole output stays in the log.
        return " ".join(parts) + " && tail -n 1 {log:q} || {{ tail -n 1 {log:q} >&2; exit 1; }}"


def option(name: str) -> str:
    return name.replace("_", "-")


def user_key(line: str, wildcards: Wildcards) -> str:
    """``model.path: ...`` -> ``models.qwen.path: ...`` (slice keys to the user's config keys)."""
    key, colon, message = line.partition(":")
    first, dot, rest = key.partition(".")
    if first in _SLICE_KEYS and _SLICE_KEYS[first][0] in wildcards:
        wildcard, section = _SLICE_KEYS[first]
        return f"{section}.{wildcards[wildcard]}{dot}{rest}{colon}{message}"
    return line


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            name="stage",
            slice=StageSlice,
            version=2,
            wildcards=("bench",),
            inputs=(),
            outputs=("item_table", "images", "rejects"),
            runner="blindspot.staging.stage:run",
            help="Stage one benchmark into the canonical items, images and rejects tables.",
        ),
        Stage(
            name="render",
            slice=RenderSlice,
            version=2,
            wildcards=("bench",),
            inputs=(("images", "stage"),),
            outputs=("store",),
            runner="blindspot.render.run:run",
            help="Render every obfuscation family and level of a staged benchmark to Zarr.",
        ),
        Stage(
            name="predict",
            slice=PredictSlice,
            version=5,
            wildcards=("model", "bench"),
            inputs=(("item_table", "stage"), ("render", "render")),
            outputs=("predictions",),
            runner="blindspot.predict:run",
            help="Run one model on every rendered condition of one benchmark.",
        ),
        Stage(
            name="decay",
            slice=DecaySlice,
            version=6,
            wildcards=("model", "bench"),
            inputs=(("predictions", "predict"), ("item_table", "stage")),
            outputs=("metrics", "classes", "manifest"),
            runner="blindspot.decay:run",
            help="Decay metrics, item classes and the vision-indispensable manifest.",
        ),
        Stage(
            name="extract",
            slice=ExtractSlice,
            version=3,
            wildcards=("model", "bench"),
            inputs=(("item_table", "stage"), ("render", "render")),
            outputs=("hidden",),
            runner="blindspot.extract:run",
            help="Per-layer hidden-state features of one model on one benchmark, to Zarr.",
        ),
        Stage(
            name="probe",
            slice=ProbeSlice,
            version=3,
            wildcards=("model", "bench"),
            inputs=(("hidden", "extract"), ("item_table", "stage")),
            outputs=("probes",),
            runner="blindspot.probes:run",
            help="Layer-wise MLP and linear probes (all layers at once) with control tasks.",
        ),
        Stage(
            name="swap",
            slice=SwapSlice,
            version=3,
            wildcards=("pair", "bench"),
            inputs=(("item_table", "stage"), ("render", "render")),
            outputs=("swaps", "answers"),
            runner="blindspot.swap:run",
            help="Counterfactual weight swaps: hybrids of a base and a donor, layer by layer and unit by unit.",
        ),
        Stage(
            name="patch",
            slice=PatchSlice,
            version=2,  # 2: ld's rival and the restored fraction defined where the target answers gold
            wildcards=("model", "bench"),
            inputs=(("item_table", "stage"), ("render", "render")),
            outputs=("patches", "per_item"),
            runner="blindspot.patch:run",
            help="Activation patching between rendered conditions, at every layer and position set.",
        ),
    )
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage '{name}' (known: {', '.join(STAGES)})") from None
