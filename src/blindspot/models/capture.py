"""Residual-stream capture with plain forward hooks, reduced to features inside the hook.

Layer convention (``LAYER_CONVENTION``, stored in every hidden-state store's attrs), that of transformers'
``output_hidden_states`` for these models, which ``tests/test_extract.py`` checks exactly: index 0 is the
embedding output (the input of decoder layer 0, image features merged in); index i in 1..L-1 is the output of
decoder layer i-1; index L is the last layer's output *after the final norm*.

Each hook reduces the layer's ``(batch, seq, hidden)`` output to the requested features before the next layer
runs, so memory does not grow with sequence length or depth:

- ``last_token``: the state at the last prompt position (batches are left-padded, so position -1);
- ``image_mean``: the mean over image-token positions (NaN where a row has no image tokens).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import nn

from blindspot.contracts.hidden import FEATURES, LAYER_CONVENTION
from blindspot.models.hook_points import reading

__all__ = ["FEATURES", "LAYER_CONVENTION", "Capture", "capture_residual_stream", "sinks"]


@dataclass
class Capture:
    """Features of one forward pass: ``features[name]`` is ``(batch, n_layers + 1, hidden)`` float32."""

    image_mask: Bool[torch.Tensor, "batch seq"]
    """Image-token positions."""
    features: dict[str, list[torch.Tensor | None]] = field(default_factory=dict)
    full: list[torch.Tensor | None] | None = None
    """With ``keep_full``: every layer's full ``(batch, seq, hidden)`` state (for fidelity tests and opt-in stores)."""
    norm_ratio: torch.Tensor | None = None
    """``(batch, seq)``: each image token's largest residual norm over the decoder layers' inputs (points 1..L-1),
    as a multiple of the median image-token norm of its row at that point (0 elsewhere): massive activations, by
    which attention sinks are found (:func:`sinks`)."""

    def stacked(self, name: str) -> Float[torch.Tensor, "batch layers hidden"]:
        states = self.features[name]
        if any(s is None for s in states):
            raise RuntimeError("a decoder layer did not run: no state captured for it")
        return torch.stack([s for s in states if s is not None], dim=1)

    def record(self, index: int, hidden: Float[torch.Tensor, "batch seq hidden"]) -> None:
        hidden = hidden.detach()
        self.features["last_token"][index] = hidden[:, -1].float()
        mask = self.image_mask.to(hidden.device, hidden.dtype).unsqueeze(-1)
        count = mask.sum(dim=1)
        summed = (hidden * mask).sum(dim=1).float()
        self.features["image_mean"][index] = torch.where(count > 0, summed / count.clamp(min=1).float(), torch.nan)
        if self.full is not None:
            self.full[index] = hidden
        n_points = len(self.features["last_token"])
        if 1 <= index < n_points - 1:  # decoder layer inputs past the embeddings; the last point is normed
            self._track_norms(hidden)

    def _track_norms(self, hidden: torch.Tensor) -> None:
        image = self.image_mask.to(hidden.device)
        norms = hidden.float().norm(dim=-1)
        median = torch.nanmedian(torch.where(image, norms, torch.nan), dim=1, keepdim=True).values
        ratio = torch.where(image, norms / median.clamp(min=1e-12), 0.0).nan_to_num(0.0)
        self.norm_ratio = ratio if self.norm_ratio is None else torch.maximum(self.norm_ratio, ratio)


def sinks(capture: Capture, ratio: float) -> Bool[torch.Tensor, "batch seq"]:
    """Image tokens whose residual norm reached ``ratio`` times the median image-token norm at some decoder layer:
    attention sinks, as the visual-attention-sink literature finds them (massive activations)."""
    if capture.norm_ratio is None:
        return torch.zeros_like(capture.image_mask, dtype=torch.bool)
    return capture.image_mask.to(capture.norm_ratio.device) & (capture.norm_ratio >= ratio)


@contextmanager
def capture_residual_stream(
    layers: nn.ModuleList,
    final_norm: nn.Module,
    image_mask: Bool[torch.Tensor, "batch seq"],
    *,
    keep_full: bool = False,
) -> Iterator[Capture]:
    """Every residual point (:mod:`blindspot.models.hook_points`) reduced to features, for one forward pass."""
    n = len(layers) + 1
    capture = Capture(
        image_mask=image_mask, features={name: [None] * n for name in FEATURES}, full=[None] * n if keep_full else None
    )

    def on_state(index: int, hidden: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        capture.record(index, hidden)

    with reading(layers, final_norm, on_state):
        yield capture
