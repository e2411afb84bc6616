"""Recorded forward passes and replays from any residual point: what activation patching and attention knockout
share.

:func:`record_run` runs the model once with every decoder layer's inputs recorded (the residual state at every
point of :mod:`blindspot.models.hook_points`, each layer's other arguments: rotary embeddings, the attention mask);
:func:`replay` runs only layers ``index``..L-1, the final norm and the output head from a given state, instead of a
whole forward pass (vision tower included). :func:`check_replay_matches` checks on a job's first batch that an
unchanged replay reproduces the model's own logits; a model that acts between its decoder layers fails it in one
line naming the stage's ``method: full_forward`` key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float

from blindspot.errors import BlindspotError
from blindspot.models.hook_points import reading
from blindspot.models.inference import label_logprobs
from blindspot.models.loading import LoadedModel


class ReplayError(BlindspotError):
    """A recorded run cannot be replayed as configured (one line)."""


@dataclass
class RecordedRun:
    """One forward pass with what a replay needs: the residual stream at every layer index, each decoder layer's
    other inputs, and the logits at the last prompt position."""

    input_ids: torch.Tensor
    states: list[Float[torch.Tensor, "batch seq hidden"]]
    """Index i of ``LAYER_CONVENTION``: 0..L-1 the input of decoder layer i, L the final norm's output."""
    layer_args: list[tuple[tuple[Any, ...], dict[str, Any]]]
    """Decoder layer i's positional arguments after the hidden state, and its keyword arguments."""
    logits: Float[torch.Tensor, "batch vocab"]


def output_head(loaded: LoadedModel) -> torch.nn.Module:
    head = loaded.model.get_output_embeddings()
    if head is None:
        raise ReplayError(f"{type(loaded.model).__name__} has no output embeddings to read logits with")
    return head


@torch.inference_mode()
def record_run(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> RecordedRun:
    layers, norm = loaded.layers, loaded.final_norm
    n = len(layers)
    states: list[torch.Tensor | None] = [None] * (n + 1)
    layer_args: list[tuple[tuple[Any, ...], dict[str, Any]] | None] = [None] * n

    def on_state(index: int, hidden: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        states[index] = hidden
        if index < n:
            layer_args[index] = (args, kwargs)

    with reading(layers, norm, on_state):
        logits = loaded.model(**inputs, use_cache=False, logits_to_keep=1).logits[:, -1].float()
    if any(s is None for s in states) or any(a is None for a in layer_args):
        raise ReplayError("a decoder layer did not run: no state recorded for it")
    return RecordedRun(inputs["input_ids"], states, layer_args, logits)  # type: ignore[arg-type]


@torch.inference_mode()
def replay(loaded: LoadedModel, run: RecordedRun, index: int, hidden: torch.Tensor) -> Float[torch.Tensor, "b v"]:
    """The last-position logits when the residual stream at layer index ``index`` is ``hidden``: layers
    ``index``..L-1, the final norm and the output head run on from there."""
    layers = loaded.layers
    if index < len(layers):
        for j in range(index, len(layers)):
            args, kwargs = run.layer_args[j]
            out = layers[j](hidden, *args, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        hidden = loaded.final_norm(hidden)
    return output_head(loaded)(hidden[:, -1:])[:, -1].float()


def check_replay_matches(loaded: LoadedModel, run: RecordedRun, key: str) -> None:
    """An unchanged replay from layer 0 must give the model's own logits; ``key``: the stage's ``method`` key."""
    replayed = replay(loaded, run, 0, run.states[0])
    scale = run.logits.abs().max().clamp(min=1.0)
    difference = float((replayed - run.logits).abs().max() / scale)
    if difference > 1e-4:
        raise ReplayError(
            f"replaying the decoder layers does not reproduce the model's logits (relative difference "
            f"{difference:.2g}): the model acts between its decoder layers; set {key}: full_forward",
            key=key,
        )


def option_logprobs(loaded: LoadedModel, logits: torch.Tensor, labels: list[tuple[str, ...]]) -> list[dict[str, float]]:
    """Per row, log P(label) over the full vocabulary (summed over the label's spellings), as predict reads them."""
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    return [label_logprobs(loaded.tokenizer, logp[row], row_labels) for row, row_labels in enumerate(labels)]


def top(lp: dict[str, float]) -> str:
    """The option with the largest log-probability."""
    return max(lp, key=lp.__getitem__)
