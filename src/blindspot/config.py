"""The one validated configuration object of a blindspot run.

`config/config.yaml` (or any file given to Snakemake with ``--configfile``) is parsed into :class:`BlindspotConfig`.
Every stage receives only its *slice* of it (see :mod:`blindspot.stages.table`), and the slice's hash goes into the
stage's output metadata.

Relative paths are resolved against the working directory (the directory Snakemake runs in), like every other
path in a Snakemake workflow.

Every choice the method leaves open (where the paper is silent) is a field here with its default, so a user can
change it.

Validation checks the config's shape only; :func:`check_paths` checks that the paths it names exist, as a step of
its own (see :mod:`blindspot.config_base`).
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    StrictBool,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from blindspot.benchmarks import registered
from blindspot.benchmarks.registry import BenchmarkConfigBase
from blindspot.config_base import StrictModel, path_problem
from blindspot.contracts.conditions import parse_condition_key
from blindspot.hub_cache import HubCacheError, resolve_model_dir, revision_problem

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"
"""Benchmark and model names become Snakemake wildcards and file names."""


class ConfigError(ValueError):
    """A configuration problem, formatted as one line per problem: ``key.path: what is wrong``."""


# --------------------------------------------------------------------------------------------------- benchmarks


if TYPE_CHECKING:
    BenchmarkConfig = BenchmarkConfigBase
else:
    BenchmarkConfig = Annotated[
        Union[tuple(spec.config for spec in registered())],  # noqa: UP007
        Field(discriminator="adapter"),
    ]
"""Any registered benchmark's config, chosen by its ``adapter`` key (see blindspot.benchmarks)."""


# --------------------------------------------------------------------------------------------------- rendering


class ResizeConfig(StrictModel):
    """The canonical working size every image is brought to before any obfuscation."""

    longest_side: int = Field(448, ge=16, description="Longest side of the working image, in pixels.")
    multiple_of: int = Field(
        28,
        ge=1,
        description="Both sides are rounded to a multiple of this (Qwen2.5-VL: patch 14 x merge 2 = 28), so "
        "the processor does not resize again and vision tokens line up across levels.",
    )
    upscale: StrictBool = Field(False, description="Also enlarge images smaller than longest_side.")


class BlurFamily(StrictModel):
    """The paper's Gaussian-blur ladder. Level 0 must be the identity (kernel 1)."""

    kernels: list[int] = Field([1, 9, 17, 25, 35, 43, 51, 61], min_length=2)
    sigma_mode: Literal["absolute", "relative"] = Field(
        "absolute",
        description="absolute: OpenCV's default sigma 0.15*k + 0.35 on the working image. relative: that "
        "sigma scaled by (shorter side / reference_side), kernel widened to cover +-3 sigma.",
    )
    reference_side: int = Field(448, ge=1, description="Shorter side at which relative sigma equals absolute.")
    precision: Literal["float", "uint8"] = Field(
        "float",
        description="float: blur in float32 and round once (an exact Gaussian). uint8: OpenCV's 8-bit path, "
        "whose fixed-point kernel weights let about 1% of any fine pattern's contrast through at every kernel.",
    )

    @field_validator("kernels")
    @classmethod
    def _check_kernels(cls, kernels: list[int]) -> list[int]:
        if kernels[0] != 1:
            raise PydanticCustomError(
                "kernels", "level 0 must be kernel 1 (the clean image), got {k}", {"k": kernels[0]}
            )
        for k in kernels:
            if k < 1 or k % 2 == 0:
                raise PydanticCustomError("kernels", "kernel sizes must be odd and positive, got {k}", {"k": k})
        if any(b <= a for a, b in itertools.pairwise(kernels)):
            raise PydanticCustomError("kernels", "kernel sizes must be strictly increasing", {})
        return kernels


class PixelateFamily(StrictModel):
    """Downsample by a block size (area average), then upsample back (nearest)."""

    enabled: StrictBool = True
    blocks: list[int] = Field([4, 8, 16, 32], min_length=1)

    @field_validator("blocks")
    @classmethod
    def _check_blocks(cls, blocks: list[int]) -> list[int]:
        if any(b < 2 for b in blocks) or any(b2 <= b1 for b1, b2 in itertools.pairwise(blocks)):
            raise PydanticCustomError("blocks", "block sizes must be >= 2 and strictly increasing", {})
        return blocks


class BlankFamily(StrictModel):
    """Replace the image with a single colour."""

    enabled: StrictBool = True
    fill: Literal["mean", "gray"] = Field("mean", description="mean: the image's mean colour; gray: 128.")


class NoiseFamily(StrictModel):
    """Replace the image with seeded uniform noise (no information from the image)."""

    enabled: StrictBool = True


class CompressionConfig(StrictModel):
    """Blosc compression of the render store. Pixel data compresses little (about 1.0-1.2x with lz4 on photos);
    ``zstd`` + ``bitshuffle`` saves ~25-40% of disk at several times the write cost. ``none`` stores raw."""

    cname: Literal["none", "lz4", "zstd", "blosclz", "zlib"] = "lz4"
    clevel: int = Field(1, ge=0, le=9)
    shuffle: Literal["noshuffle", "shuffle", "bitshuffle"] = "bitshuffle"


class RenderConfig(StrictModel):
    resize: ResizeConfig = ResizeConfig()
    blur: BlurFamily = BlurFamily()
    pixelate: PixelateFamily = PixelateFamily()
    blank: BlankFamily = BlankFamily()
    noise: NoiseFamily = NoiseFamily()
    compression: CompressionConfig = CompressionConfig()


# --------------------------------------------------------------------------------------------------- models


def _batch_size(value: Any) -> int | Literal["auto"]:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError("a batch size is a positive integer or auto")


BatchSize = Annotated[
    int | Literal["auto"],
    PlainValidator(_batch_size),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"const": "auto"}]}),
]
"""Units per batch, or ``auto``; one error line either way (a plain union would report each member's error)."""


class ModelConfig(StrictModel):
    """One vision-language model. ``path`` is a local directory (the default, offline) or a hub id."""

    adapter: Literal["qwen2_5_vl", "llava_next", "auto"] = Field(
        description="qwen2_5_vl (Qwen2.5-VL 3B/7B), llava_next (LLaVA-v1.6), or auto (any AutoModelForImageTextToText)."
    )
    revision: str | None = Field(
        None,
        description="The snapshot of a hub id to use: a branch, tag or commit name (default main), read from the "
        "local Hugging Face cache; never a path.",
    )
    hub_id: str | None = Field(None, description="Where the weights come from; named in the fetch command on errors.")
    local_files_only: StrictBool = Field(True, description="Never download (the default): runs stay offline.")
    path: str = Field(
        description="Local model directory, or a hub id (ORG/NAME): offline, one in the local Hugging Face cache "
        "(what `hf download ORG/NAME` fills); downloaded when local_files_only is false."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on CUDA, float32 on CPU."
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: cuda when available, else cpu.")
    trust_remote_code: StrictBool = Field(
        False, description="Run code shipped with the model (off unless enabled here)."
    )
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    batch_size: BatchSize = Field(
        8,
        description="Units per batch (batches are bucketed by prompt length), or auto: start at 64 on CUDA (8 on "
        "CPU) and halve on out-of-memory until a batch fits; the size found is printed.",
    )
    gpu: int = Field(
        1,
        ge=0,
        description="GPUs each of this model's jobs requests (the Snakemake resource `gpu`). Above 1, the model is "
        "spread over the visible GPUs (transformers device_map='auto'), for models larger than one GPU.",
    )
    max_new_tokens: int = Field(
        16,
        ge=0,
        le=512,
        description="Tokens generated per answer. 0: margin-only, one prefill per unit and no generation; an item "
        "with options is answered by its most likely option label (its log-probs at the first answer token), an open "
        "item is left unanswered (with a note).",
    )
    resources: dict[StageName, JobResources] = Field(
        default_factory=dict,
        description="Cluster resources of this model's jobs, per stage (over the top-level `resources`).",
    )
    max_prompt_tokens: int = Field(
        4096,
        ge=16,
        description="Items whose prompt text is longer (in the model's tokens), or longer than the model's "
        "context, are not run: their predictions are unparsed with the reason in `note`.",
    )
    llm: str | None = Field(
        None,
        description="Local directory of the model's base language model (AutoModelForCausalLM, safetensors). "
        "predict then also answers each question with it, text only (condition 'llm'), and decay reports MMStar's "
        "multimodal leakage ML = max(0, S_wv - S_t).",
    )

    @field_validator("revision")
    @classmethod
    def _a_ref_name(cls, value: str | None) -> str | None:
        if value is not None and (problem := revision_problem(value)):
            raise ValueError(problem)
        return value

    def local_dir(self) -> str:
        """The model's folder: ``path``, or the local Hugging Face cache's snapshot of the hub id ``path``
        (at ``revision``); ``path`` unchanged when neither exists (checks report it)."""
        return resolve_model_dir(self.path, self.revision) if self.local_files_only else self.path

    def weight_files(self) -> list[str]:
        """The files of the local model directory (and of its base language model) whose change must rerun the
        model's jobs (weights, config, tokenizer, processor, chat template): every regular file at their top
        level. Empty for a hub id."""
        if not self.local_files_only:
            return []
        files = []
        for folder in (self.local_dir(), self.llm):
            path = Path(folder).expanduser() if folder else None
            if path is not None and path.is_dir():
                files += sorted(str(p) for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        return files


def _condition_key(key: str) -> None:
    try:
        parse_condition_key(key)
    except ValueError as error:
        raise PydanticCustomError("conditions", str(error), {}) from None


def _condition_keys(keys: list[str]) -> list[str]:
    for key in keys:
        _condition_key(key)
    return keys


ConditionKeys = Annotated[list[str], AfterValidator(_condition_keys)]
"""A list of condition keys (``blur/0``, ``blur/-1``, ``none``), each checked."""


StageName = Literal[
    "default", "stage", "render", "predict", "decay", "extract", "probe", "swap", "patch", "lens", "knockout",
    "gather", "aggregate",
]  # fmt: skip
"""The keys of ``resources``: every stage (``gather``: the gather jobs of split stages), and ``default``."""


class JobResources(StrictModel):
    """What one job asks of the cluster (each unset key falls back to the next level: model, stage, default)."""

    runtime: int | None = Field(None, ge=1, description="Wall-clock minutes (SLURM --time).")
    mem_mb: int | None = Field(None, ge=1, description="Memory in MB (SLURM --mem).")
    cpus_per_task: int | None = Field(None, ge=1, description="CPU cores; also the job's threads.")
    gpu: int | None = Field(
        None, ge=0, description="GPUs (the `gpu` resource: --resources gpu=N caps it on a workstation)."
    )
    gres: str | None = Field(
        None,
        description="A SLURM generic resource string (gpu:a100:1). One naming a GPU replaces `gpu` on the cluster "
        "(the SLURM executor refuses both).",
    )

    @field_validator("gres")
    @classmethod
    def _slurm_gres(cls, value: str | None) -> str | None:
        """The SLURM executor's own form, checked before any job is submitted."""
        if value is not None and not re.fullmatch(r"[a-zA-Z0-9_]+(:[a-zA-Z0-9_.]+)?(:\d+[TGM]?)?", value):
            raise ValueError("gres must be <name>[:<type>][:<count>], e.g. gpu:1 or gpu:a100:2")
        return value


def _default_stage_resources() -> dict[StageName, JobResources]:
    return {
        "render": JobResources(runtime=120, cpus_per_task=4),
        "gather": JobResources(runtime=60, mem_mb=8000, cpus_per_task=1),
    }


class ResourcesConfig(StrictModel):
    """Resources per stage (``default`` under every stage); a model's own ``resources`` go over these."""

    default: JobResources = JobResources(runtime=60, mem_mb=8000, cpus_per_task=2)
    stages: dict[StageName, JobResources] = Field(
        default_factory=lambda: _default_stage_resources(),
        description="Per stage: predict, extract, ... and gather (a split job's gather).",
    )


def auto_shards(rows: int, items_per_job: int) -> int:
    """``shards: auto``: one job per ``items_per_job`` rows (at least one)."""
    return max(1, math.ceil(rows / items_per_job))


class SplitConfig(StrictModel):
    """How a benchmark with ``shards: auto`` is split."""

    items_per_job: int = Field(
        2000, ge=1, description="shards: auto gives a benchmark one job per this many of its source's rows."
    )


class PromptConfig(StrictModel):
    """The prompt every model-running stage uses (predict, extract and every later one): one spec, in each of
    their slices, so they cannot disagree."""

    version: Literal["v1", "v2"] = Field(
        "v2",
        description="Versioned prompt templates (blindspot.prompts): v1 always adds lmms-eval's answer instruction; "
        "v2 adds none to a question that carries its own ('Please answer yes or no.').",
    )


class PredictConfig(StrictModel):
    """How every model is run on every rendered condition (docs/method.md §1)."""

    conditions: list[str] | Literal["all"] = Field(
        "all",
        description="Conditions to run: 'all' rendered ones plus 'none', or a list such as ['blur/0', 'blur/7', "
        "'blank/1', 'none']. 'none' is the text-only condition (MMStar S_wv). blur/0 (clean) is always included.",
    )
    shard_size: int = Field(256, ge=1, description="Work units per resumable shard.")

    @field_validator("conditions")
    @classmethod
    def _check_conditions(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            for key in value:
                _condition_key(key)
        return value


class DecayConfig(StrictModel):
    """Decay metrics and item classes (docs/method.md §1)."""

    bootstrap: int = Field(1000, ge=10, description="Bootstrap resamples (over items) for every confidence interval.")
    confidence: float = Field(0.95, gt=0, lt=1)
    margin_threshold: float = Field(
        1.0,
        ge=0,
        description="Evidence-based survival: at a level, the clean answer must stay the top option with a log-prob "
        "margin of at least this many nats over the runner-up (1.0 nat = e times as likely). Identity alone counts "
        "coin flips that land on the clean answer as survival.",
    )
    blur_family: str = Field("blur", description="The ladder whose every level defines C (the paper's blur).")
    coarse_families: list[str] = Field(
        ["blank", "noise", "none"], description="A blur survivor that changes under any of these is coarse-visual."
    )
    min_parsed: int = Field(
        5,
        ge=1,
        description="The fewest parsed answers a rate is computed from: below it the rate (accuracy, E, C, MG ...) "
        "is null with the reason in its note, never 0.0 from nothing.",
    )
    mostly_unparsed: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A benchmark whose share of unparsed answers exceeds this is flagged first, in one line, on "
        "the console and at the top of the report (a prompt the model does not follow, a wrong answer_type).",
    )
    content_free: list[str] = Field(
        ["none", "blank"],
        description="The families whose option distribution is the item's content-free prior (averaged): the "
        "prior-corrected accuracy divides each option's probability by it (calibrate-before-use; docs/method.md §9).",
    )


class ExtractConfig(StrictModel):
    """Which hidden states the extract stage captures (docs/method.md §2)."""

    levels: ConditionKeys = Field(
        ["blur/0", "blur/-1"],
        min_length=1,
        description="Conditions to capture; blur/-1 is the most severe blur level. Default: clean and most severe.",
    )
    chunk_bytes: int = Field(1 << 20, ge=1, description="Target chunk size: (items, 1 level, 1 layer, hidden).")
    dtype: Literal["auto", "float16", "float32"] = Field(
        "auto",
        description="Stored dtype of the features. auto: float16 unless the first block's activations come within "
        "4x of its range (65504), then float32. A later value beyond float16's range is an error naming the layer.",
    )
    full_items: int = Field(0, ge=0, description="Opt-in: also store every token's state for the first K items.")
    max_tokens: int = Field(512, ge=1, description="For full_items: the last this-many positions of each prompt.")
    attention: bool = Field(
        True,
        description="Also store the last prompt token's attention mass on the image tokens per layer and head "
        "(attention sinks apart), read in the same forward pass; the lens stage reports it (docs/method.md §5).",
    )
    sink_ratio: float = Field(
        10.0,
        gt=1,
        description="An image token is an attention sink where its residual norm reaches this multiple of the median "
        "image-token norm at some decoder layer (massive activations).",
    )


class ProbeConfig(StrictModel):
    """Layer-wise probes (docs/method.md §2), all layers trained together."""

    features: list[Literal["last_token", "image_mean"]] = Field(["last_token", "image_mean"], min_length=1)
    prior_field: str | None = Field(
        "prior_answer", description="Item metadata key holding the language-prior answer (VLMBias: expected_bias)."
    )
    metadata_targets: list[str] = Field([], description="Extra targets read from item metadata (e.g. colour).")
    folds: int = Field(5, ge=2, description="Seeded k-fold, grouped by source image.")
    hidden: int = Field(64, ge=2, description="Width of the MLP probe's two hidden layers.")
    epochs: int = Field(8, ge=1, description="8 epochs at lr 1e-2 match 30 at 3e-3 (bench/probe.py).")
    batch_size: int = Field(512, ge=1)
    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the t intervals across folds.")


# --------------------------------------------------------------------------------------------------- swap, patch

SwapUnit = Literal["embeddings", "lm_head", "vision_tower", "projector"]
SWAP_UNITS: tuple[SwapUnit, ...] = ("embeddings", "lm_head", "vision_tower", "projector")
"""Named non-decoder units a swap can replace (where each lives is a field of the model family's record)."""


class SwapPair(StrictModel):
    """A base model and what replaces its parts: another configured model of the same architecture (``donor``), or
    a PEFT LoRA adapter directory on top of the base (``adapter``, merged on load; needs ``pip install peft``)."""

    base: str = Field(description="The base model: a name in `models`.")
    donor: str | None = Field(None, description="The donor model: a name in `models` (same architecture).")
    adapter: str | None = Field(None, description="A PEFT LoRA adapter directory trained on the base.")

    @model_validator(mode="after")
    def _one_donor(self) -> SwapPair:
        if (self.donor is None) == (self.adapter is None):
            raise ValueError("give exactly one of donor (a model name) or adapter (a LoRA adapter directory)")
        return self


class SwapSpecs(StrictModel):
    """Which hybrids to build: each replaces the named parts of the base with the donor's."""

    first_n: list[int] = Field([1, 2], description="The first n decoder layers, for each n.")
    last_n: list[int] = Field([1, 2], description="The last n decoder layers, for each n.")
    windows: list[int] = Field([1], description="Sliding windows of w consecutive layers, for each w (1: every layer).")
    units: list[SwapUnit] = Field(
        list(SWAP_UNITS),
        description="Non-decoder units, one hybrid each: embeddings, lm_head (with the final norm), vision_tower, "
        "projector (Qwen's merger, LLaVA's multi_modal_projector and image_newline).",
    )

    @field_validator("first_n", "last_n", "windows")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError(f"layer counts must be at least 1, got {values}")
        return sorted(set(values))


class SwapConfig(StrictModel):
    """Counterfactual weight swaps between checkpoints (docs/method.md §3)."""

    pairs: dict[str, SwapPair] = Field(default_factory=dict, description="Name -> (base, donor or adapter).")
    specs: SwapSpecs = SwapSpecs()
    conditions: ConditionKeys = Field(
        ["blur/0", "none"], min_length=1, description="Rendered conditions each hybrid answers ('none': no image)."
    )
    bootstrap: int = Field(1000, ge=10, description="Cluster-bootstrap resamples for every interval.")
    confidence: float = Field(0.95, gt=0, lt=1)


class PatchConfig(StrictModel):
    """Activation patching across rendered conditions (docs/method.md §3)."""

    models: list[str] = Field(default_factory=list, description="Models to patch (names in `models`); opt-in.")
    pairs: list[str] = Field(
        ["blur/0->blur/-1", "blur/-1->blur/0"],
        min_length=1,
        description="source->target condition pairs: the source run's states are written into the target run.",
    )
    positions: list[Literal["image", "last", "all"]] = Field(
        ["image", "last", "all"], min_length=1, description="Where to patch: image tokens, the last prompt token, all."
    )
    max_items: int | None = Field(None, ge=1, description="Patch only the first this-many items with option labels.")
    method: Literal["replay", "full_forward"] = Field(
        "replay",
        description="replay: run the layers below the patch once per item and condition and replay from each layer; "
        "full_forward: one whole forward pass per layer (slower; for models that act between decoder layers).",
    )
    shard_size: int = Field(256, ge=1, description="Items per resumable shard.")
    bootstrap: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0, lt=1)

    @field_validator("pairs")
    @classmethod
    def _check_pairs(cls, pairs: list[str]) -> list[str]:
        for pair in pairs:
            source, arrow, target = pair.partition("->")
            if not arrow:
                raise PydanticCustomError("conditions", "'{p}' is not source->target", {"p": pair})
            for key in (source.strip(), target.strip()):
                _condition_key(key)
                if key == "none":
                    raise PydanticCustomError("conditions", "'{p}': patching needs images on both sides", {"p": pair})
        return pairs


class LensConfig(StrictModel):
    """The answer through depth: logit lens and tuned lens on the extract stage's states (docs/method.md §6)."""

    enabled: bool = Field(True, description="Run the lens stage for every model (it reads the extract stage's store).")
    fit_level: str = Field(
        "blur/0", description="The condition whose states the tuned lens's translators are fitted on (clean)."
    )
    folds: int = Field(5, ge=2, description="Cross-fitting folds, grouped by source image: each item's tuned lens "
                       "was fitted without it.")  # fmt: skip
    ridge: float = Field(
        1.0, gt=0, description="Ridge penalty of the translators, relative to the mean squared state norm."
    )
    bootstrap: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0, lt=1)

    @field_validator("fit_level")
    @classmethod
    def _check_level(cls, key: str) -> str:
        _condition_key(key)
        return key


KnockoutPosition = Literal["last", "question", "text"]


class KnockoutConfig(StrictModel):
    """Attention knockout: block the answer's (and the question's) access to the image over windows of layers
    (docs/method.md §7)."""

    models: list[str] = Field(default_factory=list, description="Models to knock out (names in `models`); opt-in.")
    conditions: ConditionKeys = Field(["blur/0"], min_length=1, description="Conditions the knockout runs at.")
    windows: list[int] = Field([3], min_length=1, description="Window sizes (layers); each slides over every layer.")
    positions: list[KnockoutPosition] = Field(
        ["last", "text"],
        min_length=1,
        description="Whose access to the image is blocked: the last prompt token (the answer position), the "
        "question's tokens with it, or every text token.",
    )
    max_items: int | None = Field(None, ge=1, description="Knock out only the first this-many items with options.")
    shard_size: int = Field(256, ge=1, description="Items per resumable shard.")
    bootstrap: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0, lt=1)

    @field_validator("windows")
    @classmethod
    def _check_windows(cls, windows: list[int]) -> list[int]:
        if any(w < 1 for w in windows):
            raise PydanticCustomError("windows", "window sizes must be at least 1 layer, got {w}", {"w": windows})
        return sorted(set(windows))

    @field_validator("conditions")
    @classmethod
    def _check_conditions(cls, keys: list[str]) -> list[str]:
        if "none" in keys:
            raise PydanticCustomError("conditions", "knockout needs an image: 'none' cannot be a condition", {})
        return keys


class CompareConfig(StrictModel):
    """Paired comparisons between models on the same items (the aggregate stage; docs/method.md §8)."""

    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]] | None = Field(
        None, description="Model pairs [a, b] to compare (a minus b); default: every pair of configured models."
    )
    hybrids: bool = Field(
        True, description="Also compare every swap hybrid with its base (each swap.pairs spec against 'base')."
    )
    adjust: Literal["holm", "bh"] = Field(
        "holm",
        description="p-value adjustment over each pair's benchmark x condition grid: holm (family-wise error) or "
        "bh (Benjamini-Hochberg, false discovery rate).",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="The test level: adjusted p below it is a difference.")
    power: float = Field(0.8, gt=0, lt=1, description="The power the minimum detectable effect is given at.")
    bootstrap: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0, lt=1)

    @field_validator("pairs")
    @classmethod
    def _check_pairs(cls, pairs: list[list[str]] | None) -> list[list[str]] | None:
        for a, b in pairs or []:
            if a == b:
                raise PydanticCustomError("pairs", "a pair compares two different models, got [{a}, {a}]", {"a": a})
        return pairs


# --------------------------------------------------------------------------------------------------- report


def _command_line_bool(value: Any) -> Any:
    """`snakemake --config check_paths=false` passes the text "false": exactly "true"/"false", nothing looser."""
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


CommandLineBool = Annotated[StrictBool, BeforeValidator(_command_line_bool)]
"""A strict boolean that also takes the words true/false (as Snakemake's --config passes them)."""

SEED_MAX = 2**32 - 1
"""Seeds go to NumPy, OpenCV and torch generators; every one accepts 0 .. 2**32 - 1."""


class ReportConfig(StrictModel):
    """The aggregate stage: tables in results/tables, plots in results/plots, and results/report.html."""

    browser_items: int = Field(
        24, ge=0, description="Items per benchmark in the report's item browser (chosen across item classes)."
    )
    thumbnail_side: int = Field(96, ge=16, le=512, description="Longest side of the browser's thumbnails, pixels.")
    table_rows: int = Field(
        400, ge=10, description="Rows per table shown in the report (the Parquet tables always hold every row)."
    )


# --------------------------------------------------------------------------------------------------- toy world


class ToyConfig(StrictModel):
    """The toy benchmark's planted ground truth (``blindspot toy-data``) and the calibration tolerances."""

    benchmark: str = Field("toy", description="Name of the toy benchmark in `benchmarks`.")
    n_items: int = Field(1000, ge=4)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    shares: dict[Literal["fine", "mid", "late", "coarse", "prior", "conflict"], float] = Field(
        {"fine": 0.1, "mid": 0.2, "late": 0.1, "coarse": 0.25, "prior": 0.15, "conflict": 0.2},
        description="Planted share of each kind of item: stripes erased early (fine), mid-ladder (mid) or only by "
        "the last kernel (late); colour (coarse); text-fixed (prior); hint against colour (conflict).",
    )
    models: dict[str, Literal["base", "donor"]] = Field(
        default_factory=dict, description="Which configured models are toy bases and which are donors."
    )
    lens_models: dict[str, Literal["reader", "overruled"]] = Field(
        default_factory=dict,
        description="The toy models that plant where the image is read (reader: only in one decoder layer; "
        "overruled: the reader with a later layer trained to follow the hint): calibrate checks the lens, attention "
        "and knockout stages against them.",
    )
    shared_images: float = Field(
        0.4,
        ge=0,
        lt=1,
        description="Share of items asked about an image together with others: each such image is asked its "
        "question `questions_per_image` times (as POPE asks several questions of one image). The model's answers "
        "agree within an image, so the design effect is planted and calibrate checks that intervals rest on images.",
    )
    questions_per_image: int = Field(4, ge=2, le=16, description="Questions asked of each shared image.")
    cluster_tolerance: float = Field(
        0.15, gt=0, lt=1, description="The C rate's interval must be this close (relative) to the image-level width."
    )
    share_tolerance: float = Field(0.03, gt=0, description="Measured class shares must be this close to planted.")
    conflict_threshold: float = Field(0.9, gt=0, le=1, description="Share of conflict items classed as expected.")
    item_agreement: float = Field(
        0.98, gt=0, le=1, description="Share of items whose measured class must equal their planted kind's class."
    )

    @field_validator("shares")
    @classmethod
    def _check_shares(cls, shares: dict[str, float]) -> dict[str, float]:
        if any(v < 0 for v in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
            raise PydanticCustomError("shares", "shares must be non-negative and sum to 1, got {s}", {"s": shares})
        return shares


# --------------------------------------------------------------------------------------------------- top level


class BlindspotConfig(StrictModel):
    """The whole run. ``benchmarks`` and ``models`` are keyed by a name used in output paths."""

    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="Seed for every random choice (noise images, bootstrap, probe splits)."
    )
    check_paths: CommandLineBool = Field(
        True,
        description="Check that every configured path exists before any job (false where the submit node cannot "
        "see the paths the compute nodes see; each job still checks its own inputs).",
    )
    results: str = Field(
        "results",
        pattern=r"^[^\s]+$",
        description="The folder every output goes to (relative to the working directory). A run with a benchmark "
        "`limit` or another trial config should name its own (results-small), so its outputs never replace a full "
        "run's.",
    )
    prompt: PromptConfig = PromptConfig()
    benchmarks: dict[str, BenchmarkConfig] = Field(min_length=1)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    render: RenderConfig = RenderConfig()
    predict: PredictConfig = PredictConfig()
    decay: DecayConfig = DecayConfig()
    extract: ExtractConfig = ExtractConfig()
    probe: ProbeConfig = ProbeConfig()
    swap: SwapConfig = SwapConfig()
    patch: PatchConfig = PatchConfig()
    lens: LensConfig = LensConfig()
    knockout: KnockoutConfig = KnockoutConfig()
    compare: CompareConfig = CompareConfig()
    report: ReportConfig = ReportConfig()
    split: SplitConfig = SplitConfig()
    resources: ResourcesConfig = ResourcesConfig()
    toy: ToyConfig | None = Field(None, description="The toy world: planted ground truth and calibration.")

    @field_validator("results")
    @classmethod
    def _a_folder_of_this_run(cls, value: str) -> str:
        """No root, home, working directory or parent: every output (and ``blindspot clean``'s deletions) goes
        to a folder of this run's own."""
        parts = Path(value).parts
        if value in ("/", "~", ".", "") or value.startswith("~") or ".." in parts or set(parts) <= {"/", "."}:
            raise ValueError(
                f"{value!r} is not a folder of this run: name a folder of its own for the outputs (results, "
                "results-small, /data/run1/results), not the root, the home or working directory, nor one reached "
                "through '..'"
            )
        return value

    @field_validator("benchmarks", "models")
    @classmethod
    def _check_names(cls, entries: dict[str, Any]) -> dict[str, Any]:
        for name in entries:
            if not re.fullmatch(NAME_PATTERN, name):
                raise PydanticCustomError(
                    "name",
                    "name {name} must match {pattern} (letters, digits, _ and -; no space or newline)",
                    {"name": repr(name), "pattern": NAME_PATTERN},
                )
        return entries

    @model_validator(mode="after")
    def _check_render_fits(self) -> BlindspotConfig:
        if self.render.resize.multiple_of > self.render.resize.longest_side:
            raise ValueError("render.resize.multiple_of must not exceed render.resize.longest_side")
        for name, pair in self.swap.pairs.items():
            if not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(f"swap.pairs: name {name!r} must match {NAME_PATTERN} (no space or newline)")
            for role in ("base", "donor"):
                model = getattr(pair, role)
                if model is not None and model not in self.models:
                    raise ValueError(f"swap.pairs.{name}.{role}: '{model}' is not one of the models")
            if pair.donor is not None and self.models[pair.base].adapter != self.models[pair.donor].adapter:
                raise ValueError(
                    f"swap.pairs.{name}: base '{pair.base}' ({self.models[pair.base].adapter}) and donor "
                    f"'{pair.donor}' ({self.models[pair.donor].adapter}) do not share an architecture"
                )
        for section in ("patch", "knockout"):
            unknown = sorted(set(getattr(self, section).models) - set(self.models))
            if unknown:
                raise ValueError(f"{section}.models names unconfigured models: {', '.join(unknown)}")
        for name in self.benchmarks:
            for section in ("render", "probe"):
                try:
                    getattr(self, f"{section}_for")(name)
                except ValidationError as error:
                    first = format_validation_error(error).splitlines()[0]
                    raise ValueError(f"benchmarks.{name}.{section}: {first}") from None
        if self.toy is not None and self.toy.benchmark not in self.benchmarks:
            raise ValueError(f"toy.benchmark '{self.toy.benchmark}' is not one of the benchmarks")
        for a, b in self.compare.pairs or []:
            unknown = sorted({a, b} - set(self.models))
            if unknown:
                raise ValueError(f"compare.pairs names unconfigured models: {', '.join(unknown)}")
        if self.toy is not None:
            for key in ("models", "lens_models"):
                unknown = sorted(set(getattr(self.toy, key)) - set(self.models))
                if unknown:
                    raise ValueError(f"toy.{key} names unconfigured models: {', '.join(unknown)}")
        return self

    def compare_pairs(self) -> list[tuple[str, str]]:
        """The model pairs compared: ``compare.pairs``, or every pair of configured models (sorted)."""
        if self.compare.pairs is not None:
            return [(a, b) for a, b in self.compare.pairs]
        names = sorted(self.models)
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]

    def shards_for(self, bench: str) -> int:
        """How many jobs each model-running job of ``bench`` is split into: its ``shards``, or for ``auto`` one per
        ``split.items_per_job`` rows of its source (counted without reading it; the adapter's published size where
        the source is not here), so the number does not change once the benchmark is staged."""
        entry = self.benchmarks[bench]
        if entry.shards != "auto":
            return int(entry.shards)
        rows = entry.source_rows()
        if rows is None:
            from blindspot.benchmarks import get_benchmark

            rows = get_benchmark(entry.adapter).items or 1
            rows = min(rows, entry.limit) if entry.limit is not None else rows
        return auto_shards(rows, self.split.items_per_job)

    def resources_for(self, stage: str, model: str | None = None) -> dict[str, int | str]:
        """The Snakemake resources of one job: ``resources.default``, then ``resources.stages.<stage>``, then
        ``models.<model>.resources.<stage>``; ``gpu`` defaults to the GPUs of the ``model`` the job loads (none for
        a job that loads none). A ``gres`` naming a GPU replaces ``gpu``."""
        merged: dict[str, int | str] = {"gpu": self.models[model].gpu if model is not None else 0}
        layers = [self.resources.default, self.resources.stages.get(stage)]  # type: ignore[call-overload]
        if model is not None:
            layers.append(self.models[model].resources.get(stage))  # type: ignore[call-overload]
        for layer in layers:
            if layer is not None:
                merged |= layer.model_dump(exclude_none=True)
        if "gpu" in str(merged.get("gres", "")):
            merged.pop("gpu")
        return merged

    def render_for(self, bench: str) -> RenderConfig:
        """The render settings of one benchmark: the global ones with its ``render`` overrides merged in."""
        override = self.benchmarks[bench].render
        if not override:
            return self.render
        return RenderConfig.model_validate(_deep_merge(self.render.model_dump(), override))

    def probe_for(self, bench: str) -> ProbeConfig:
        """The probe settings of one benchmark: the global ones with its ``probe`` targets merged in."""
        override = self.benchmarks[bench].probe
        unknown = sorted(set(override) - PROBE_OVERRIDES)
        if unknown:
            raise ValueError(f"benchmarks.{bench}.probe: '{unknown[0]}' cannot be set per benchmark (only "
                             f"{', '.join(sorted(PROBE_OVERRIDES))})")  # fmt: skip
        if not override:
            return self.probe
        return ProbeConfig.model_validate(self.probe.model_dump() | override)


PROBE_OVERRIDES = frozenset({"metadata_targets", "prior_field"})
"""Probe settings a benchmark may override (its targets); the training settings stay global."""


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _yaml_typed(value: Any) -> Any:
    """A command-line value as YAML reads it ("50" -> 50, "true" -> True, "[1, 3]" -> [1, 3]); text stays text."""
    if isinstance(value, dict):
        return {key: _yaml_typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_yaml_typed(item) for item in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            return value
    return value


def with_command_line_types(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The config with its command-line overrides read with their YAML types. Snakemake hands nested ``--config``
    values over as strings (``--config 'benchmarks={toy: {limit: 50}}'`` gives ``limit: "50"``), which the strict
    validation of a YAML file would rightly refuse; a trial run from the command line needs no new file. Values
    written in a config file are left exactly as written (still strict)."""
    return _deep_merge(config, _yaml_typed(overrides))


# --------------------------------------------------------------------------------------------------- errors


_SELF_DESCRIBING_ERRORS = {"kernels", "blocks", "name", "conditions", "shares"}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _key_path_and_siblings(schema: dict[str, Any], loc: tuple[Any, ...]) -> tuple[list[str], list[str]]:
    """Follow a pydantic error location through the config's JSON schema.

    Returns the user-facing key path (union tags removed) and the keys allowed beside the last one.
    """
    node = schema
    path: list[str] = []
    allowed: list[str] = []
    for part in loc:
        node = _resolve(schema, node)
        mapping = node.get("discriminator", {}).get("mapping", {})
        if part in mapping:  # a union member chosen by its tag: not a key the user wrote
            node = _resolve(schema, {"$ref": mapping[part]})
            continue
        path.append(str(part))
        properties = node.get("properties", {})
        allowed = sorted(properties)
        if str(part) in properties:
            node = properties[str(part)]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            node = {}
    return path, allowed


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the dotted key and what to do."""
    schema = BlindspotConfig.model_json_schema()
    lines = []
    for item in error.errors():
        path, allowed = _key_path_and_siblings(schema, tuple(item["loc"]))
        key = ".".join(path) or "<config>"
        if item["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(path[-1], allowed, n=1)
            message = "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else "")
            if allowed:
                message += f" (allowed: {', '.join(allowed)})"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "union_tag_not_found":
            key += "." + item["ctx"]["discriminator"].strip("'")
            message = "required key is missing"
        elif item["type"] == "union_tag_invalid":
            key += "." + item["ctx"]["discriminator"].strip("'")
            message = f"unknown value {item['ctx']['tag']!r} (known: {item['ctx']['expected_tags']})"
        else:
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] not in _SELF_DESCRIBING_ERRORS:
                shown = json.dumps(item.get("input"), default=str)
                if len(shown) <= 60:
                    message += f" (got {shown})"
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any]) -> BlindspotConfig:
    """Validate a config mapping; raise :class:`ConfigError` with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"<config>: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return BlindspotConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def results_problem(results: str) -> str | None:
    """What makes the results folder unusable on this machine: an existing file, or the working directory or one of
    its parents (a link can lead there). None when it is fine."""
    path = Path(results)
    if path.exists() and not path.is_dir():
        return f"'{results}' is an existing file, not a folder: name another folder for the outputs"
    here = Path.cwd().resolve()
    resolved = path.resolve()
    if resolved == here or resolved in here.parents:
        return f"'{results}' leads to '{resolved}', the working directory or a parent of it: name a folder of its own"
    return None


def path_problems(config: BlindspotConfig) -> list[str]:
    """One line per configured path that does not exist: ``benchmarks.x.path: no such file ...``."""
    lines = []
    toy = config.toy.benchmark if config.toy is not None else None
    for name, bench in config.benchmarks.items():
        for key, value, kind in bench.paths():
            problem = path_problem(value, kind)
            if problem and name == toy and key == "path":  # a fresh clone: the toy world is generated, not shipped
                fix = f"blindspot toy-data --config CONFIG --out {Path(value).parent}"
                problem += f"; make the toy data first: make demo-data (or {fix})"
            if problem:
                lines.append(f"benchmarks.{name}.{key}: {problem}")
    for name, model in config.models.items():
        if model.local_files_only:
            try:
                problem = path_problem(model.path, "model", model.hub_id, model.revision)
            except HubCacheError as error:  # a revision, or a cache entry, that would lead outside the cache
                lines.append(f"models.{name}.{error.key.removeprefix('model.')}: {error.message}" if error.key
                             else f"models.{name}.path: {error.message}")  # fmt: skip
                continue
            if problem:
                lines.append(f"models.{name}.path: {problem}")
        if model.llm is not None:
            problem = path_problem(model.llm, "model")
            if problem:
                lines.append(f"models.{name}.llm: {problem}")
    for name, pair in config.swap.pairs.items():
        if pair.adapter is not None:
            problem = path_problem(pair.adapter, "directory")
            if problem:
                lines.append(f"swap.pairs.{name}.adapter: {problem}")
    return lines


def check_paths(config: BlindspotConfig) -> None:
    """Raise :class:`ConfigError` listing every configured path that does not exist."""
    problems = path_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key written twice in one mapping is an error: PyYAML (and so Snakemake) keeps
    the last value, and an edit to the first copy of a key would silently do nothing."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice in one mapping (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping)


def read_config_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's YAML, with the problems a user can fix as one-line :class:`ConfigError`: no such file,
    not YAML, a key written twice, not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"<config>: no such file '{path}'")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"<config>: '{path}' is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"<config>: '{path}' must be a mapping of sections (seed, benchmarks, ...)")
    return data


def load_config(path: str | Path) -> BlindspotConfig:
    """Read and validate a YAML config file (its shape; :func:`check_paths` checks its paths)."""
    return parse_config(read_config_yaml(path))


def json_schema() -> dict[str, Any]:
    """The config's JSON schema, for editors and ``snakemake.utils.validate``."""
    schema = BlindspotConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "blindspot configuration"
    return schema
