"""Config slices: the part of the config each stage receives.

The Snakefile passes a stage its slice as JSON (``params``), so a job reruns exactly when its own slice changes;
the stage validates the slice with the model below and records its hash in the output's provenance.
"""

from __future__ import annotations

from pydantic import TypeAdapter

from blindspot.config import (
    BenchmarkConfig,
    BlindspotConfig,
    DecayConfig,
    ExtractConfig,
    ModelConfig,
    PredictConfig,
    ProbeConfig,
    RenderConfig,
    StrictModel,
)
from blindspot.provenance import canonical_json


class StageSlice(StrictModel):
    benchmark: BenchmarkConfig


class RenderSlice(StrictModel):
    render: RenderConfig
    seed: int


class PredictSlice(StrictModel):
    model: ModelConfig
    predict: PredictConfig


class DecaySlice(StrictModel):
    decay: DecayConfig
    seed: int


class ExtractSlice(StrictModel):
    model: ModelConfig
    extract: ExtractConfig


class ProbeSlice(StrictModel):
    probe: ProbeConfig
    seed: int


SLICE_MODELS: dict[str, type[StrictModel]] = {
    "stage": StageSlice,
    "render": RenderSlice,
    "predict": PredictSlice,
    "decay": DecaySlice,
    "extract": ExtractSlice,
    "probe": ProbeSlice,
}


def stage_slice(config: BlindspotConfig, bench: str) -> StageSlice:
    return StageSlice(benchmark=config.benchmarks[bench])


def render_slice(config: BlindspotConfig) -> RenderSlice:
    return RenderSlice(render=config.render, seed=config.seed)


def predict_slice(config: BlindspotConfig, model: str) -> PredictSlice:
    return PredictSlice(model=config.models[model], predict=config.predict)


def decay_slice(config: BlindspotConfig) -> DecaySlice:
    return DecaySlice(decay=config.decay, seed=config.seed)


def extract_slice(config: BlindspotConfig, model: str) -> ExtractSlice:
    return ExtractSlice(model=config.models[model], extract=config.extract)


def probe_slice(config: BlindspotConfig) -> ProbeSlice:
    return ProbeSlice(probe=config.probe, seed=config.seed)


def to_json(slice_: StrictModel) -> str:
    return canonical_json(slice_)


def parse_slice(stage: str, text: str) -> StrictModel:
    return TypeAdapter(SLICE_MODELS[stage]).validate_json(text)
