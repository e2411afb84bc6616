"""Registry of model families: what differs between Qwen2.5-VL, LLaVA-NeXT and any other image-text-to-text model.

Each family is a small frozen record. The differences it captures are where the decoder layers live, where the
units a weight swap can replace live (as parameter-name prefixes of the loaded model), which token marks image
positions, and which transformers class loads it. Nothing is inferred from a model's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_class: str
    """transformers class that loads it; AutoModelForImageTextToText for the generic adapter."""
    model_types: tuple[str, ...]
    """``config.model_type`` values this family accepts (empty: any)."""
    description: str
    units: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Swap units (``embeddings``, ``lm_head``, ``vision_tower``, ``projector``) -> the parameter-name prefixes they
    cover in the loaded model. Empty for the generic adapter: it swaps decoder layers only."""
    decoder_prefix: str = "model.language_model.layers"
    """Parameter-name prefix of the decoder layers (layer i: ``{decoder_prefix}.{i}``)."""

    def unit_prefixes(self, unit: str) -> tuple[str, ...]:
        for name, prefixes in self.units:
            if name == unit:
                return prefixes
        known = ", ".join(name for name, _ in self.units) or "none: decoder layers only"
        raise KeyError(f"the {self.name} family has no swap unit '{unit}' (known: {known})")

    def layer_prefix(self, index: int) -> str:
        return f"{self.decoder_prefix}.{index}"

    def decoder_layers(self, model: nn.Module) -> nn.ModuleList:
        """The language model's decoder layers: ``model.model.language_model.layers`` in transformers 5.x."""
        inner = getattr(model, "model", None)
        language_model = getattr(inner, "language_model", None)
        layers = getattr(language_model, "layers", None)
        if isinstance(layers, nn.ModuleList):
            return layers
        raise AttributeError(f"{type(model).__name__}: no decoder layers at model.language_model.layers")

    def final_norm(self, model: nn.Module) -> nn.Module:
        """The norm after the last decoder layer (``model.model.language_model.norm``)."""
        norm = getattr(getattr(getattr(model, "model", None), "language_model", None), "norm", None)
        if isinstance(norm, nn.Module):
            return norm
        raise AttributeError(f"{type(model).__name__}: no final norm at model.language_model.norm")

    def image_token_id(self, model: nn.Module) -> int:
        config = model.config
        for attr in ("image_token_id", "image_token_index"):
            value = getattr(config, attr, None)
            if isinstance(value, int):
                return value
        raise AttributeError(f"{type(model).__name__}: config has no image_token_id / image_token_index")

    def image_positions(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``(batch, seq)`` of image-token positions."""
        return input_ids == self.image_token_id(model)


FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily(
            "qwen2_5_vl",
            "Qwen2_5_VLForConditionalGeneration",
            ("qwen2_5_vl",),
            "Qwen2.5-VL (3B / 7B). M-RoPE positions need mm_token_type_ids, which its processor returns.",
            units=(
                ("embeddings", ("model.language_model.embed_tokens",)),
                ("lm_head", ("lm_head", "model.language_model.norm")),
                ("vision_tower", ("model.visual.patch_embed", "model.visual.blocks")),
                ("projector", ("model.visual.merger",)),
            ),
        ),
        ModelFamily(
            "llava_next",
            "LlavaNextForConditionalGeneration",
            ("llava_next",),
            "LLaVA-NeXT / LLaVA-v1.6 (e.g. llava-v1.6-mistral-7b-hf), anyres tiling.",
            units=(
                ("embeddings", ("model.language_model.embed_tokens",)),
                ("lm_head", ("lm_head", "model.language_model.norm")),
                ("vision_tower", ("model.vision_tower",)),
                ("projector", ("model.multi_modal_projector", "model.image_newline")),
            ),
        ),
        ModelFamily(
            "auto",
            "AutoModelForImageTextToText",
            (),
            "Any model AutoModelForImageTextToText and AutoProcessor load, with a chat template.",
        ),
    )
}


LANGUAGE_MODEL = ModelFamily(
    "causal_lm",
    "AutoModelForCausalLM",
    (),
    "A VLM's base language model alone (for MMStar's S_t); not a VLM adapter, so not in FAMILIES.",
)


def get_family(name: str) -> ModelFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model adapter '{name}' (known: {', '.join(FAMILIES)})") from None
