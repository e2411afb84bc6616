"""The residual stream's named points: every point is read once per forward pass, in order, and equals
transformers' hidden_states; replacing a point's state changes what comes after it and nothing before."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from blindspot.config import ModelConfig
from blindspot.models.hook_points import point_name, reading, replacing
from blindspot.models.inference import Request, encode_batch
from blindspot.models.loading import load_model
from blindspot.models.prompts import render_prompt


def test_point_names_follow_transformer_lens() -> None:
    assert [point_name(i, 2) for i in range(3)] == [
        "blocks.0.hook_resid_pre",
        "blocks.1.hook_resid_pre",
        "ln_final.hook_normalized",
    ]
    with pytest.raises(IndexError, match=r"outside 0\.\.2"):
        point_name(3, 2)


def keep(into: dict[int, torch.Tensor], index: int, hidden: torch.Tensor, args: Any, kwargs: Any) -> None:
    into[index] = hidden.clone()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_next"])
def test_reading_and_replacing_every_point(tiny_models: dict[str, Path], family: str) -> None:
    loaded = load_model(ModelConfig(adapter=family, path=str(tiny_models[family])))
    inputs = encode_batch(loaded, [Request(render_prompt(loaded.processor, "What colour?", 0), (), None)])
    seen: list[int] = []
    states: dict[int, torch.Tensor] = {}

    def on_state(index: int, hidden: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen.append(index)
        states[index] = hidden.clone()

    with torch.inference_mode():
        with reading(loaded.layers, loaded.final_norm, on_state):
            out = loaded.model(**inputs, output_hidden_states=True)
        n = len(loaded.layers)
        assert seen == list(range(n + 1))
        for index in range(n + 1):
            assert torch.equal(states[index], out.hidden_states[index]), point_name(index, n)

        for index in range(n + 1):  # a zero state at one point: the points before keep their values
            later: dict[int, torch.Tensor] = {}
            record = partial(keep, later)
            with (
                replacing(loaded.layers, loaded.final_norm, index, torch.zeros_like(states[index])),
                reading(loaded.layers, loaded.final_norm, record),
            ):
                patched = loaded.model(**inputs).logits
            for before in range(index):
                assert torch.equal(later[before], states[before])
            assert not torch.equal(patched, out.logits)


class _Layer(torch.nn.Module):
    def forward(self, hidden_states: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return hidden_states * scale + 1


def test_a_state_is_replaced_and_read_whether_passed_by_position_or_by_keyword() -> None:
    """transformers passes a decoder layer its state by position in some families and versions and as
    ``hidden_states=`` in others: both are read, and both are replaced."""
    from blindspot.models.hook_points import reading, replacing

    layers, norm = torch.nn.ModuleList([_Layer(), _Layer()]), torch.nn.Identity()
    x, new = torch.zeros(1, 2, 3), torch.full((1, 2, 3), 7.0)
    for call in (lambda layer, h: layer(h, scale=2.0), lambda layer, h: layer(hidden_states=h, scale=2.0)):
        with replacing(layers, norm, 1, new):
            out = call(layers[1], call(layers[0], x))
        assert torch.equal(out, new * 2 + 1), "the state at blocks.1.hook_resid_pre was not replaced"
        seen: list[torch.Tensor] = []
        with reading(layers, norm, lambda i, state, args, kwargs, seen=seen: seen.append(state.clone())):
            norm(call(layers[1], call(layers[0], x)))
        assert [float(s.max()) for s in seen] == [0.0, 1.0, 3.0]
