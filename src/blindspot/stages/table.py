"""The table of pipeline stages: the one place that says what each stage receives, reads, writes and runs.

Each :class:`Stage` names

- its **slice** (:mod:`blindspot.stages.slices`): the pydantic model of the part of the config it receives (as
  JSON, the rule's ``params``), so a job reruns exactly when its own slice changes, and its **output version**,
  bumped when the stage's outputs change meaning, so that new code that changes outputs reruns the stage's jobs;
- its **wildcards** (``bench``, ``model``), its named **inputs** (each with the stage that produces it) and named
  **outputs**: explicit paths, never derived from a directory name;
- its **runner**, ``module:function``, called as ``run(slice, inputs, outputs, job)``. It is imported only when the
  stage runs, so building the Snakemake DAG or parsing a slice never imports torch;
- for a stage that can be **split** over item ranges (``shards:`` per benchmark), its **gather**, called as
  ``gather(slice, inputs, parts, outputs, job)``: part ``k`` of ``N`` writes each output at its
  :meth:`Stage.part_template` (``parts/{part}/...``), and the gather writes the outputs the unsplit job writes
  (:mod:`blindspot.contracts.parts`);
- the **weights** its jobs load (``model``: the model wildcard's; ``pair``: a swap pair's base and donor), which
  its rules take as inputs and which decide the GPUs its jobs request.

From this table come the CLI's stage subcommands (:mod:`blindspot.cli`), the slice each rule passes
(``rules/common.smk``: ``slice_param``) and each rule's shell command (``cli_command``). A new stage is one module
with a ``run`` function, one entry here, and one thin rule (``docs/adding-a-stage.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from blindspot.config import BlindspotConfig, format_validation_error
from blindspot.contracts.parts import WHOLE, Part
from blindspot.errors import BlindspotError
from blindspot.stages.slices import (
    FIELD_SOURCES,
    DecaySlice,
    ExtractSlice,
    KnockoutSlice,
    LensSlice,
    PatchSlice,
    PredictSlice,
    ProbeSlice,
    RenderSlice,
    SliceBase,
    StageSlice,
    SwapSlice,
    Wildcards,
)
from blindspot.store.provenance import canonical_json

# ------------------------------------------------------------------------------------------------ stages


@dataclass(frozen=True)
class JobContext:
    """What a stage's runner knows about its job besides the slice and the paths."""

    stage: str
    wildcards: Mapping[str, str] = field(default_factory=dict)
    threads: int = 1
    progress: bool = True
    part: Part = WHOLE
    """The part of the items a split job runs (``Part(1, 1)``: every item)."""

    @property
    def bench(self) -> str:
        return self.wildcards["bench"]

    @property
    def model(self) -> str:
        return self.wildcards["model"]

    @property
    def part_suffix(self) -> str:
        """`` (part 2-of-3)`` for a split job's console line; empty for an unsplit one."""
        return "" if self.part.whole else f" (part {self.part.label})"


Paths = Mapping[str, Path]


class Runner(Protocol):
    def __call__(self, config: Any, inputs: Paths, outputs: Paths, job: JobContext) -> str: ...


class Gatherer(Protocol):
    def __call__(self, config: Any, inputs: Paths, parts: Sequence[Paths], outputs: Paths, job: JobContext) -> str: ...


@dataclass(frozen=True)
class Input:
    """A named input of a stage: the output ``output`` of stage ``stage``."""

    name: str
    stage: str
    output: str


@dataclass(frozen=True)
class Output:
    """A named output: its path template under the results folder (the stage's wildcards in braces)."""

    name: str
    template: str
    directory: bool = False
    """A Zarr store (a folder). Its rule declares the store's root metadata, ``<store>/zarr.json``
    (:data:`STORE_ROOT`), not the folder: Snakemake then puts no marker file of its own inside the store (xarray
    would warn about it), and a store whose root metadata is gone is rebuilt by the next run."""
    schema: str | None = None
    """A table's contract schema, by its name in :mod:`blindspot.contracts.tables` (checked when a stage reads it)."""


STORE_ROOT = "zarr.json"
"""What a rule declares for a store: its root metadata file, written last (the store is renamed into place whole)."""


@dataclass(frozen=True)
class RunNames:
    """The names a run's jobs range over, from the config: a stage's wildcard takes its values from one of these."""

    models: tuple[str, ...]
    benchmarks: tuple[str, ...]
    pairs: tuple[str, ...]
    patch_models: tuple[str, ...]
    lens_models: tuple[str, ...] = ()
    knockout_models: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: BlindspotConfig) -> RunNames:
        return cls(
            models=tuple(sorted(config.models)),
            benchmarks=tuple(sorted(config.benchmarks)),
            pairs=tuple(sorted(config.swap.pairs)),
            patch_models=tuple(sorted(config.patch.models)),
            lens_models=tuple(sorted(config.models)) if config.lens.enabled else (),
            knockout_models=tuple(sorted(config.knockout.models)),
        )


_DOMAINS = {"model": "models", "bench": "benchmarks", "pair": "pairs"}
"""Which :class:`RunNames` field a wildcard ranges over, unless a stage says otherwise (``Stage.domains``)."""


@dataclass(frozen=True)
class Stage:
    name: str
    slice: type[SliceBase]
    version: int
    wildcards: tuple[str, ...]
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    runner: str
    """``module:function`` with the :class:`Runner` signature; imported when the stage runs."""
    help: str
    domains: Mapping[str, str] = field(default_factory=dict)
    """Wildcards that range over another :class:`RunNames` field than the default (patch: ``patch_models``)."""
    weights: str | None = None
    """The weights its jobs load: ``model`` (the model wildcard's) or ``pair`` (a swap pair's base and donor)."""
    gather: str | None = None
    """``module:function`` with the :class:`Gatherer` signature, for a stage that can be split over item ranges."""

    @property
    def splittable(self) -> bool:
        return self.gather is not None

    @staticmethod
    def part_template(template: str) -> str:
        """Where part ``{part}`` (``2-of-3``) of a split job writes an output: ``parts/{part}/<its path>``."""
        return f"parts/{{part}}/{template}"

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(output.name for output in self.outputs)

    def output(self, name: str) -> Output:
        for output in self.outputs:
            if output.name == name:
                return output
        raise KeyError(f"the {self.name} stage has no output '{name}' (it has: {', '.join(self.output_names)})")

    def input_template(self, name: str) -> str:
        """The path template of an input: its producer's output template."""
        return self.input_output(name).template

    def input_output(self, name: str) -> Output:
        """The output an input is: its producer's."""
        for item in self.inputs:
            if item.name == name:
                return STAGES[item.stage].output(item.output)
        raise KeyError(f"the {self.name} stage has no input '{name}'")

    def rule_templates(self, part: bool = False) -> tuple[dict[str, str], dict[str, str]]:
        """(inputs, outputs) as the rule declares them: a store by its root metadata file (:data:`STORE_ROOT`);
        ``part``: the outputs of one part of a split job (:meth:`part_template`)."""

        def declared(output: Output, split: bool = False) -> str:
            template = self.part_template(output.template) if split else output.template
            return f"{template}/{STORE_ROOT}" if output.directory else template

        inputs = {item.name: declared(self.input_output(item.name)) for item in self.inputs}
        return inputs, {output.name: declared(output, part) for output in self.outputs}

    def store_params(self) -> dict[str, tuple[str, str]]:
        """The rule's params that hand a store's folder to the CLI: ``<name>_store`` -> (input or output, name)."""
        params = {
            f"{item.name}_store": ("input", item.name) for item in self.inputs if self.input_output(item.name).directory
        }
        params |= {f"{output.name}_store": ("output", output.name) for output in self.outputs if output.directory}
        return params

    def _job_path(self, kind: str, suffix: str, job: str) -> str:
        """``<kind>/<stage>/{model}/{bench}<suffix>``; a part's under ``<kind>/parts/{part}/``, a gather's under
        ``<kind>/gather/``."""
        head = {"whole": [kind], "part": [kind, "parts", "{part}"], "gather": [kind, "gather"]}[job]
        return "/".join([*head, self.name, *(f"{{{w}}}" for w in self.wildcards)]) + suffix

    @property
    def log_template(self) -> str:
        """``logs/<stage>/{model}/{bench}.log``: one log per job, keyed like its outputs."""
        return self._job_path("logs", ".log", "whole")

    @property
    def benchmark_template(self) -> str:
        """``benchmarks/<stage>/{model}/{bench}.tsv``: Snakemake's timing and memory of each job."""
        return self._job_path("benchmarks", ".tsv", "whole")

    def split_log_template(self, job: str) -> str:
        """The log of a part (``job="part"``) or of the gather (``job="gather"``) of a split job."""
        return self._job_path("logs", ".log", job)

    def split_benchmark_template(self, job: str) -> str:
        return self._job_path("benchmarks", ".tsv", job)

    def jobs(self, names: RunNames) -> list[dict[str, str]]:
        """The wildcards of every job this stage runs for a config's names (models x benchmarks, ...)."""
        jobs: list[dict[str, str]] = [{}]
        for wildcard in self.wildcards:
            values: tuple[str, ...] = getattr(names, self.domains.get(wildcard, _DOMAINS[wildcard]))
            jobs = [job | {wildcard: value} for job in jobs for value in values]
        return jobs

    def paths(self, results: str | Path, wildcards: Wildcards) -> dict[str, Path]:
        """Every named input and output path of one job, under the results folder."""
        templates = {item.name: self.input_template(item.name) for item in self.inputs}
        templates |= {output.name: output.template for output in self.outputs}
        return {name: Path(results) / template.format(**wildcards) for name, template in templates.items()}

    def build_slice(self, config: BlindspotConfig, wildcards: Wildcards) -> SliceBase:
        values: dict[str, Any] = {"output_version": self.version}
        for name in self.slice.model_fields:
            if name == "output_version":
                continue
            source = FIELD_SOURCES.get(name)
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

    def check_inputs(self, inputs: Paths) -> None:
        """Each input is the output of the stage the table names (its provenance and its contract's columns): a
        foreign or mismatched file is one line naming it and the output expected."""
        from blindspot.contracts import tables
        from blindspot.store.inputs import expect_output

        for item in self.inputs:
            produced = STAGES[item.stage].output(item.output)
            schema = getattr(tables, produced.schema) if produced.schema else None
            expect_output(inputs[item.name], item.stage, item.output, schema)

    def load_runner(self) -> Runner:
        module, _, function = self.runner.partition(":")
        runner: Runner = getattr(importlib.import_module(module), function)
        return runner

    def load_gatherer(self) -> Gatherer:
        if self.gather is None:
            raise KeyError(f"the {self.name} stage cannot be split")
        module, _, function = self.gather.partition(":")
        gatherer: Gatherer = getattr(importlib.import_module(module), function)
        return gatherer

    def _arguments(self, command: str) -> tuple[list[str], list[str]]:
        """``<command> --<wildcard> ... --slice ... --<input> ...``, and ``--<output> ...``: what every job of the
        stage is given (a store by its folder, the params' ``<name>_store``; a file by its path)."""
        stores = self.store_params()

        def value(kind: str, name: str) -> str:
            return f"{{params.{name}_store:q}}" if f"{name}_store" in stores else f"{{{kind}.{name}:q}}"

        head = [command, *(f"--{w} {{wildcards.{w}:q}}" for w in self.wildcards), "--slice {params.slice:q}"]
        head += [f"--{option(item.name)} {value('input', item.name)}" for item in self.inputs]
        return head, [f"--{option(name)} {value('output', name)}" for name in self.output_names]

    def gather_command(self) -> str:
        """The gather rule's shell command: ``blindspot gather <stage>`` with the parts of each output, in order."""
        head, outputs = self._arguments(f"blindspot gather {self.name}")
        parts = [f"--{option(name)}-parts {{params.{name}_parts:q}}" for name in self.output_names]
        return " ".join([*head, *parts, *outputs, "--log {log:q}"])

    def cli_command(self, part: bool = False) -> str:
        """The rule's shell command: ``blindspot <stage>`` with its wildcards, slice, inputs, outputs and log. The
        job writes its full output to the log itself and puts short lines on the console (its start, its progress
        every half minute, its summary or its one-line error: :mod:`blindspot.progress`)."""
        head, outputs = self._arguments(f"blindspot {self.name}")
        return " ".join([*head, *outputs, *(["--part {wildcards.part}"] if part else []),
                         "--threads {threads} --log {log:q}"])  # fmt: skip


def option(name: str) -> str:
    return name.replace("_", "-")


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            name="stage",
            slice=StageSlice,
            version=2,
            wildcards=("bench",),
            inputs=(),
            outputs=(
                Output("item_table", "staged/{bench}/items.parquet", schema="ITEMS_SCHEMA"),
                Output("images", "staged/{bench}/images.parquet", schema="IMAGES_SCHEMA"),
                Output("rejects", "staged/{bench}/rejects.parquet", schema="REJECTS_SCHEMA"),
            ),
            runner="blindspot.stages.staging:run",
            help="Stage one benchmark into the canonical items, images and rejects tables.",
        ),
        Stage(
            name="render",
            slice=RenderSlice,
            version=2,
            wildcards=("bench",),
            inputs=(Input("images", "stage", "images"),),
            outputs=(Output("store", "render/{bench}.zarr", directory=True),),
            runner="blindspot.stages.render.run:run",
            help="Render every obfuscation family and level of a staged benchmark to Zarr.",
        ),
        Stage(
            name="predict",
            slice=PredictSlice,
            version=6,  # 6: each row carries the prompt as the model saw it
            wildcards=("model", "bench"),
            inputs=(Input("item_table", "stage", "item_table"), Input("render", "render", "store")),
            outputs=(Output("predictions", "predictions/{model}/{bench}.parquet", schema="PREDICTIONS_SCHEMA"),),
            runner="blindspot.stages.predict:run",
            weights="model",
            gather="blindspot.stages.predict:gather",
            help="Run one model on every rendered condition of one benchmark.",
        ),
        Stage(
            name="decay",
            slice=DecaySlice,
            version=9,  # 9: the prior-corrected accuracy and the yes-rate per condition
            wildcards=("model", "bench"),
            inputs=(Input("predictions", "predict", "predictions"), Input("item_table", "stage", "item_table")),
            outputs=(
                Output("metrics", "decay/{model}/{bench}.parquet", schema="DECAY_METRICS_SCHEMA"),
                Output("classes", "decay/{model}/{bench}.items.parquet", schema="DECAY_ITEMS_SCHEMA"),
                Output("manifest", "decay/{model}/{bench}.manifest.json"),
            ),
            runner="blindspot.stages.decay:run",
            help="Decay metrics, item classes and the vision-indispensable manifest.",
        ),
        Stage(
            name="extract",
            slice=ExtractSlice,
            version=4,  # 4: the last token's attention on the image per layer and head, and the attention sinks
            wildcards=("model", "bench"),
            inputs=(Input("item_table", "stage", "item_table"), Input("render", "render", "store")),
            outputs=(Output("hidden", "hidden/{model}/{bench}.zarr", directory=True),),
            runner="blindspot.stages.extract:run",
            weights="model",
            gather="blindspot.stages.extract:gather",
            help="Per-layer hidden-state features of one model on one benchmark, to Zarr.",
        ),
        Stage(
            name="probe",
            slice=ProbeSlice,
            version=3,
            wildcards=("model", "bench"),
            inputs=(Input("hidden", "extract", "hidden"), Input("item_table", "stage", "item_table")),
            outputs=(Output("probes", "probes/{model}/{bench}.parquet", schema="PROBES_SCHEMA"),),
            runner="blindspot.stages.probe:run",
            help="Layer-wise MLP and linear probes (all layers at once) with control tasks.",
        ),
        Stage(
            name="swap",
            slice=SwapSlice,
            version=4,  # 4: each answer carries the prompt as the model saw it
            wildcards=("pair", "bench"),
            inputs=(Input("item_table", "stage", "item_table"), Input("render", "render", "store")),
            outputs=(
                Output("swaps", "swaps/{pair}/{bench}.parquet", schema="SWAP_SCHEMA"),
                Output("answers", "swaps/{pair}/{bench}.answers.parquet", schema="SWAP_ANSWERS_SCHEMA"),
            ),
            runner="blindspot.stages.swap:run",
            weights="pair",
            help="Counterfactual weight swaps: hybrids of a base and a donor, layer by layer and unit by unit.",
        ),
        Stage(
            name="patch",
            slice=PatchSlice,
            version=2,  # 2: ld's rival and the restored fraction defined where the target answers gold
            wildcards=("model", "bench"),
            inputs=(Input("item_table", "stage", "item_table"), Input("render", "render", "store")),
            outputs=(
                Output("patches", "patches/{model}/{bench}.parquet", schema="PATCHES_SCHEMA"),
                Output("per_item", "patches/{model}/{bench}.items.parquet", schema="PATCH_ITEMS_SCHEMA"),
            ),
            runner="blindspot.stages.patch:run",
            weights="model",
            gather="blindspot.stages.patch:gather",
            help="Activation patching between rendered conditions, at every layer and position set.",
            domains={"model": "patch_models"},
        ),
        Stage(
            name="lens",
            slice=LensSlice,
            version=1,
            wildcards=("model", "bench"),
            inputs=(Input("hidden", "extract", "hidden"), Input("item_table", "stage", "item_table")),
            outputs=(
                Output("lens", "lens/{model}/{bench}.parquet", schema="LENS_SCHEMA"),
                Output("per_item", "lens/{model}/{bench}.items.parquet", schema="LENS_ITEMS_SCHEMA"),
                Output("sinks", "lens/{model}/{bench}.sinks.parquet", schema="SINKS_SCHEMA"),
            ),
            runner="blindspot.stages.lens:run",
            weights="model",
            help="The answer through depth (logit and tuned lens) and the answer's attention on the image.",
            domains={"model": "lens_models"},
        ),
        Stage(
            name="knockout",
            slice=KnockoutSlice,
            version=1,
            wildcards=("model", "bench"),
            inputs=(Input("item_table", "stage", "item_table"), Input("render", "render", "store")),
            outputs=(
                Output("knockout", "knockout/{model}/{bench}.parquet", schema="KNOCKOUT_SCHEMA"),
                Output("per_item", "knockout/{model}/{bench}.items.parquet", schema="KNOCKOUT_ITEMS_SCHEMA"),
            ),
            runner="blindspot.stages.knockout:run",
            weights="model",
            help="Attention knockout: the answer's access to the image blocked over windows of layers.",
            domains={"model": "knockout_models"},
        ),
    )
}


def output_path(results: str | Path, stage: str, output: str, **wildcards: str) -> Path:
    """Where a stage writes one output of one job, e.g. ``output_path("results", "decay", "classes", model="qwen",
    bench="pope")``."""
    return Path(results) / STAGES[stage].output(output).template.format(**wildcards)
