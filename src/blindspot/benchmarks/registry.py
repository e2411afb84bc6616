"""The benchmark registry: one :class:`BenchmarkSpec` per benchmark, keyed by its config's ``adapter`` name.

A benchmark is one unit (as an lmms-eval task is): its config model, the reader that turns its local download
into raw items, and how its items are prompted, parsed, scored and aggregated into its official scores. The
defaults below serve any benchmark whose answers follow its answer type (multiple choice, yes/no, open, count);
a benchmark with its own rules overrides them. Registering happens when a benchmark module is imported;
:mod:`blindspot.benchmarks` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq
from pydantic import Field, field_validator

from blindspot.answers import Parsed, parse_answer, score_answer, score_official
from blindspot.answers.vqa import OpenScorer
from blindspot.benchmarks.official import OfficialInput, Scores
from blindspot.config_base import PathKind, StrictModel
from blindspot.contracts.items import RawItem, Reject
from blindspot.images import DEFAULT_MAX_PIXELS
from blindspot.prompts import item_text

Item = Mapping[str, Any]
"""A canonical item: one row of items.parquet (see blindspot.contracts.tables.ITEMS_SCHEMA)."""


class BenchmarkScoring(StrictModel):
    """How a benchmark's prompts are built and its answers scored: the part of its config that every stage running
    or scoring a model receives in its own config slice (so changing ``open_scorer`` reruns predict, swap, patch and
    decay, and no stage reads it back from an upstream table's provenance)."""

    adapter: str = Field(description="The benchmark's adapter: its prompt, reader and official scores.")
    open_scorer: OpenScorer = Field(description="How open answers are scored ('textvqa', 'vqav2' or 'vqav2_evalai').")


GENERIC_SCORING = BenchmarkScoring(adapter="generic", open_scorer="textvqa")
"""The generic adapter with the default open scorer (benchmarks the fixtures build, the bench scripts)."""


DEFAULT_MAX_IMAGE_BYTES = 64 * 2**20
"""64 MiB: far above any benchmark image (a 4K PNG is about 25 MB), far below what would exhaust memory."""


class BenchmarkConfigBase(StrictModel):
    """Fields every benchmark's config has. Subclasses add theirs and fix ``adapter`` to their name."""

    adapter: str
    limit: int | None = None
    max_image_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        description="Images whose header declares more pixels (width x height) are rejected before decoding.",
    )
    max_image_bytes: int = Field(
        DEFAULT_MAX_IMAGE_BYTES,
        ge=1,
        description="Encoded images larger than this (bytes) are rejected before they are read or decoded.",
    )
    max_reject_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Staging fails when more than this share of the source rows is rejected (rows a `filter` "
        "leaves out do not count): a wrong column mapping must not pass as a small benchmark.",
    )
    render: dict[str, Any] = Field(
        default_factory=dict,
        description="Render settings for this benchmark only, merged over the global `render` (any of its keys, "
        "e.g. {resize: {longest_side: 1344}} for a high-resolution benchmark).",
    )
    probe: dict[str, Any] = Field(
        default_factory=dict,
        description="Probe targets for this benchmark only, over the global `probe`: `metadata_targets` and/or "
        "`prior_field` (VLMBias: expected_bias).",
    )
    shards: int | Literal["auto"] = Field(
        1,
        description="Split each model-running job (predict, extract, patch) of this benchmark into this many jobs "
        "over disjoint item ranges, gathered into the output the unsplit job writes (identical for any number); "
        "auto: one job per `split.items_per_job` of the source's rows.",
    )
    open_scorer: OpenScorer = Field(
        "textvqa",
        description="How open answers are scored: 'textvqa' (EvalAI's processing on the answer and every "
        "reference), 'vqav2' (lmms-eval's current VQA v2 rule: punctuation and words on the answer and every "
        "reference, once) or 'vqav2_evalai' (the older rule: references re-processed only where they differ), each "
        "exactly as published.",
    )

    @field_validator("shards", mode="before")
    @classmethod
    def _positive_shards(cls, value: Any) -> Any:
        """One line for any bad value (the union's own errors would be one per member)."""
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError("shards must be a positive number of jobs or 'auto'")
        return value

    def source_rows(self) -> int | None:
        """The source's rows (at most ``limit``), counted without reading them: parquet footers, JSONL lines. None
        where the source is not here (a dry run on a machine without the data)."""
        rows = 0
        for name in self.input_files():
            path = Path(name)
            if path.suffix == ".parquet":
                rows += pq.ParquetFile(path).metadata.num_rows
            elif path.suffix == ".jsonl":
                with path.open("rb") as handle:
                    rows += sum(1 for line in handle if line.strip())
        if not rows:
            return None
        return min(rows, self.limit) if self.limit is not None else rows

    def official_groups(self) -> Any:
        """The config's official aggregates over groups of items (a benchmark described in config may declare
        them: :class:`blindspot.benchmarks.generic.PairedOfficial`); None for an adapter that defines its own."""
        return None

    def scoring(self) -> BenchmarkScoring:
        return BenchmarkScoring(adapter=self.adapter, open_scorer=self.open_scorer)

    def paths(self) -> list[tuple[str, str, PathKind]]:
        """(key, path, kind) of every local path this entry names, for the filesystem check."""
        return []

    def image_folder(self) -> Path | None:
        """The folder relative image paths are resolved against (None: paths are not allowed)."""
        return None

    def input_files(self) -> list[str]:
        """The source files whose change must re-stage the benchmark (Snakemake inputs of the stage rule)."""
        return []

    def data_problems(self) -> list[str]:
        """Problems found by opening the source (``check-config --data``): missing columns, with those that
        exist. One line each, relative to the entry (the caller prefixes ``benchmarks.<name>``)."""
        return []


def default_prompt(item: Item, version: str) -> str:
    return item_text(item, version)


def default_parse(text: str, item: Item) -> Parsed:
    return parse_answer(text, item["answer_type"], item["options"], item["question"])


def default_score(parsed: Parsed, item: Item, scorer: str) -> tuple[str, float]:
    return score_answer(parsed, item["answer"], item["answer_type"], item["answers"], scorer)


def default_score_official(text: str, item: Item, scorer: str) -> float | None:
    return score_official(text, item["answer"], item["answer_type"], item["answers"], scorer)


def image_cluster(item: Item) -> str:
    """Items asking about the same image(s) move together in the bootstrap."""
    return "+".join(item["image_keys"])


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    config: type[BenchmarkConfigBase]
    description: str
    read: Callable[[Any], Iterator[RawItem | Reject]]
    """Yields the raw items (or per-row rejects) of a config entry's source, in source order."""
    prompt: Callable[[Item, str], str] = default_prompt
    """The user text of an item at a prompt version (the model's chat template is applied later)."""
    parse: Callable[[str, Item], Parsed] = default_parse
    score: Callable[[Parsed, Item, str], tuple[str, float]] = default_score
    """(outcome, score) of a parsed answer; the third argument is the open-answer scorer (``open_scorer``)."""
    score_official: Callable[[str, Item, str], float | None] = default_score_official
    """The official scorer on the raw response (open answers), or None."""
    official: Callable[[OfficialInput], Scores] | None = None
    """The benchmark's official scores of one condition (e.g. POPE's F1), each as an array over the point
    estimate and the bootstrap resamples (``blindspot.benchmarks.official``); None: the generic accuracy only."""
    cluster: Callable[[Item], str] = image_cluster
    """The bootstrap's resampling unit of an item (HallusionBench: its question set, so pairs stay whole)."""
    source: str = ""
    """Where the data is published (e.g. ``lmms-lab/POPE``), for ``blindspot adapters`` and the README."""
    columns: tuple[str, ...] = ()
    """The source columns the reader expects (``blindspot adapters``)."""
    items: int | None = None
    """About how many items the default split stages (the published size): ``shards: auto`` plans with it where
    the source is not on the machine that plans the run."""


_REGISTRY: dict[str, BenchmarkSpec] = {}


def register(spec: BenchmarkSpec) -> BenchmarkSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"benchmark adapter '{spec.name}' is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_benchmark(name: str) -> BenchmarkSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark adapter '{name}' (known: {', '.join(sorted(_REGISTRY))})") from None


def registered() -> list[BenchmarkSpec]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
