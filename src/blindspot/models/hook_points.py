"""Named points on the residual stream, and the only hooks that read or replace the state there.

A model with L decoder layers has L + 1 points, indexed like transformers' ``output_hidden_states``
(``LAYER_CONVENTION``; ``tests/test_extract.py`` checks the captured states against it exactly):

- index 0, ``blocks.0.hook_resid_pre``: the embeddings as they enter decoder layer 0 (image features merged in);
- index i in 1..L-1, ``blocks.{i}.hook_resid_pre``: the input of decoder layer i (the output of layer i-1);
- index L, ``ln_final.hook_normalized``: the last layer's output after the final norm (what the head reads).

The names follow TransformerLens'. Points 0..L-1 are pre-hooks on the decoder layers, point L a hook on the final
norm. The extract stage reads every point (:func:`reading`); the patch stage records every point with the layer's
other arguments and replaces the state at one point (:func:`replacing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import nn

OnState = Callable[[int, Float[torch.Tensor, "batch seq hidden"], tuple[Any, ...], dict[str, Any]], None]
"""Called at each point with (index, state, the layer's other positional args, its keyword args); the final
norm's point has no layer arguments."""


def point_name(index: int, n_layers: int) -> str:
    """The point's name: ``blocks.{i}.hook_resid_pre`` for i < L, ``ln_final.hook_normalized`` for L."""
    if not 0 <= index <= n_layers:
        raise IndexError(f"residual point {index} outside 0..{n_layers}")
    return "ln_final.hook_normalized" if index == n_layers else f"blocks.{index}.hook_resid_pre"


def hidden_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """A decoder layer's input state, whether passed by position or as ``hidden_states``."""
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def reading(layers: nn.ModuleList, final_norm: nn.Module, on_state: OnState) -> Iterator[None]:
    """Call ``on_state`` at every point, in order, during the forward passes inside the block."""

    def before(index: int) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            rest = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            on_state(index, hidden_of(args, kwargs), tuple(args[1:]), rest)

        return hook

    def after_norm(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        on_state(len(layers), output, (), {})

    handles = [layer.register_forward_pre_hook(before(i), with_kwargs=True) for i, layer in enumerate(layers)]
    handles.append(final_norm.register_forward_hook(after_norm))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def replacing(
    layers: nn.ModuleList, final_norm: nn.Module, index: int, hidden: Float[torch.Tensor, "batch seq hidden"]
) -> Iterator[None]:
    """During the forward passes inside the block, the state at point ``index`` is ``hidden``."""
    point_name(index, len(layers))  # the index is checked
    if index < len(layers):

        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        handle = layers[index].register_forward_pre_hook(pre, with_kwargs=True)
    else:
        handle = final_norm.register_forward_hook(lambda module, args, output: hidden)
    try:
        yield
    finally:
        handle.remove()
