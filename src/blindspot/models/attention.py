"""Reading and blocking the language model's attention, layer by layer.

Every decoder attention module of the supported families calls the attention function that transformers'
registry (``ALL_ATTENTION_FUNCTIONS``) holds for its config's ``_attn_implementation``. Inside
:func:`attention_control` that name points at :func:`_controlled`, which runs the model's own implementation (SDPA,
eager, ...) and, on the layers asked for,

- **records** the last prompt token's attention row (softmax of its query against every key, with the model's own
  mask and scaling; grouped-query heads expanded), as ``(batch, heads, seq)`` float32: only that row is computed
  explicitly, so memory stays ``O(heads x seq)`` however long the prompt (LLaVA-NeXT's any-resolution tiles);
- **knocks out** attention from chosen query positions to chosen key positions (:class:`Knockout`), by adding
  them to the mask the layer already uses (a causal mask is built where the model passes none).

A model whose attention does not go through the registry (a custom attention module behind the generic adapter)
never reaches :func:`_controlled`; :func:`check_attention` finds that in one short forward pass and says so in one
line, so a stage leaves that model out rather than reporting attention it never read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import nn
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

from blindspot.errors import BlindspotError

CONTROLLED = "blindspot_controlled"
"""The name :func:`_controlled` is registered under in transformers' attention registry."""


class AttentionUnsupported(BlindspotError):
    """The model's attention cannot be read or masked through transformers' attention registry."""


@dataclass(frozen=True)
class Knockout:
    """Block attention from ``queries`` to ``keys`` (``(batch, seq)`` position masks) in decoder ``layers``."""

    layers: frozenset[int]
    queries: Bool[torch.Tensor, "batch seq"]
    keys: Bool[torch.Tensor, "batch seq"]


@dataclass
class Control:
    """What :func:`_controlled` does while a block runs: the layers whose last-row attention it records, the
    knockout it applies, and what it recorded."""

    modules: dict[int, int]
    """id(attention module) -> its decoder layer index."""
    implementation: str
    """The model's own attention implementation, run for every call."""
    record: frozenset[int] = frozenset()
    knockout: Knockout | None = None
    rows: dict[int, Float[torch.Tensor, "batch heads seq"]] = field(default_factory=dict)
    """Decoder layer -> the last prompt token's attention row, as recorded in the last forward pass."""
    calls: set[int] = field(default_factory=set)
    """The decoder layers whose attention went through the registry in this block."""


_ACTIVE: list[Control] = []


def _own_implementation(module: nn.Module, name: str) -> Callable[..., Any]:
    """The attention function the module would call on its own: the registry's, or its file's eager one."""
    if name != "eager" and name in ALL_ATTENTION_FUNCTIONS:
        return ALL_ATTENTION_FUNCTIONS[name]
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise AttentionUnsupported(f"{type(module).__name__}: no eager attention function to run", key="model.path")
    return eager


def _allowed(mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """The mask as booleans ``(batch or 1, 1 or heads, q, k)``, True where a query may attend (causal where the
    model passes no mask)."""
    q, k = query.shape[-2], key.shape[-2]
    if mask is None:
        return torch.ones(q, k, dtype=torch.bool, device=query.device).tril(k - q)[None, None]
    if mask.dtype == torch.bool:
        return mask[..., -q:, -k:] if mask.dim() == 4 else mask
    return (mask > torch.finfo(mask.dtype).min / 2)[..., -q:, -k:]


def _masked(mask: torch.Tensor | None, allowed: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``allowed`` in the form the model's mask had (boolean, or additive float in the query's dtype)."""
    if mask is not None and mask.dtype != torch.bool:
        zero = torch.zeros((), dtype=mask.dtype, device=mask.device)
        return torch.where(allowed, zero, torch.finfo(mask.dtype).min)
    return allowed


def _last_row(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, allowed: torch.Tensor, scaling: float | None
) -> Float[torch.Tensor, "batch heads seq"]:
    """Softmax of the last query row against every key, per (query) head, as float32."""
    heads, kv_heads = query.shape[1], key.shape[1]
    if kv_heads != heads:  # grouped-query attention: each key head serves heads / kv_heads query heads
        key = key.repeat_interleave(heads // kv_heads, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = (query[:, :, -1:].float() @ key.float().transpose(-1, -2)).squeeze(-2) * scale
    row_allowed = allowed[..., -1, :].expand(scores.shape[0], heads, -1) if allowed.dim() == 4 else allowed
    scores = scores.masked_fill(~row_allowed, float("-inf"))
    return torch.softmax(scores, dim=-1)


def _controlled(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    control = _ACTIVE[-1]
    own = _own_implementation(module, control.implementation)
    layer = control.modules.get(id(module))
    if layer is None:  # not a decoder attention module of the controlled model
        return own(module, query, key, value, attention_mask, **kwargs)
    control.calls.add(layer)
    knock = control.knockout
    if (knock is not None and layer in knock.layers) or layer in control.record:
        allowed = _allowed(attention_mask, query, key)
        if knock is not None and layer in knock.layers:
            blocked = knock.queries[:, -query.shape[-2] :, None] & knock.keys[:, None, -key.shape[-2] :]
            allowed = allowed & ~blocked[:, None].to(allowed.device)
            attention_mask = _masked(attention_mask, allowed, query)
            kwargs["is_causal"] = False
        if layer in control.record:
            control.rows[layer] = _last_row(module, query, key, allowed, kwargs.get("scaling")).detach()
    return own(module, query, key, value, attention_mask, **kwargs)


def _controlled_mask(*args: Any, **kwargs: Any) -> Any:
    """The mask the model's own implementation builds (the decoder builds its mask by the implementation's name)."""
    implementation = _ACTIVE[-1].implementation if _ACTIVE else "sdpa"
    return ALL_MASK_ATTENTION_FUNCTIONS[implementation](*args, **kwargs)


AttentionInterface.register(CONTROLLED, _controlled)
AttentionMaskInterface.register(CONTROLLED, _controlled_mask)


def attention_modules(layers: nn.ModuleList) -> dict[int, nn.Module]:
    """Decoder layer index -> its self-attention module (the child named ``self_attn``, else the first child whose
    class name ends in ``Attention``)."""
    out: dict[int, nn.Module] = {}
    for index, layer in enumerate(layers):
        found = getattr(layer, "self_attn", None)
        if found is None:
            found = next((m for m in layer.modules() if type(m).__name__.endswith("Attention")), None)
        if found is not None:
            out[index] = found
    return out


@contextmanager
def attention_control(
    layers: nn.ModuleList, *, record: set[int] | frozenset[int] = frozenset(), knockout: Knockout | None = None
) -> Iterator[Control]:
    """Inside the block, the decoder's attention records the last prompt token's row at ``record`` and applies
    ``knockout``; the yielded :class:`Control` holds the rows of the last forward pass."""
    modules = attention_modules(layers)
    configs: dict[int, Any] = {id(m.config): m.config for m in modules.values() if hasattr(m, "config")}
    if len(modules) != len(layers) or not configs:
        raise AttentionUnsupported(
            f"{len(layers) - len(modules)} of {len(layers)} decoder layers have no attention module with a config "
            "to route through transformers' attention registry",
            key="model.path",
        )
    (implementation,) = {c._attn_implementation or "eager" for c in configs.values()}
    control = Control({id(m): i for i, m in modules.items()}, implementation, frozenset(record), knockout)
    _ACTIVE.append(control)
    for config in configs.values():
        config._attn_implementation = CONTROLLED
    try:
        yield control
    finally:
        for config in configs.values():
            config._attn_implementation = implementation
        _ACTIVE.pop()


def check_attention(layers: nn.ModuleList, forward: Callable[[], Any]) -> str | None:
    """Why this model's attention cannot be read or masked (one line), or None where every decoder layer's
    attention went through the registry during ``forward`` (one short forward pass)."""
    try:
        with attention_control(layers, record=frozenset(range(len(layers)))) as control:
            forward()
    except AttentionUnsupported as error:
        return str(error)
    missing = sorted(set(range(len(layers))) - control.calls)
    if missing:
        return (
            f"the attention of decoder layers {missing[:5]}{' ...' if len(missing) > 5 else ''} does not go through "
            "transformers' attention registry, so it can be neither read nor masked"
        )
    return None
