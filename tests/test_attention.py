"""Reading and blocking attention through transformers' registry (blindspot.models.attention), on both families:

- the recorded last-row attention equals the eager implementation's ``output_attentions`` row (LLaVA-NeXT's
  any-resolution tiles included), and recording changes no logit;
- a knockout of zero layers changes nothing; blocking every layer makes the answer independent of the image; a
  window starting at layer L leaves every residual point up to L untouched and changes the next (no off-by-one);
- a model whose attention does not go through the registry is named in one line, never read;
- image mass and attention-sink mass are kept apart (extract's buffers), and a sink is found by its residual norm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from blindspot.config import ModelConfig
from blindspot.models.attention import Control, Knockout, attention_control, check_attention
from blindspot.models.capture import Capture, sinks
from blindspot.models.hook_points import reading
from blindspot.models.inference import Request, encode_batch
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.prompts import render_prompt
from blindspot.stages.extract import AttentionBuffers

TOLERANCE = 1e-5
FAMILIES = ["qwen2_5_vl", "llava_next"]


def _batch(loaded: LoadedModel, seed: int = 0) -> dict[str, Any]:
    """Two prompts of different lengths (left padding), each with an image (LLaVA-NeXT: a wide one, so several
    tiles)."""
    rng = np.random.default_rng(seed)
    shapes = [(56, 112, 3), (84, 56, 3)]
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]
    questions = ["What colour is the object?\nA. red\nB. blue\nAnswer with the letter.", "Is it striped?"]
    pairs = zip(questions, images, strict=True)
    requests = [Request(render_prompt(loaded.processor, q, 1), (image,), None) for q, image in pairs]
    return encode_batch(loaded, requests)


def _logits(loaded: LoadedModel, inputs: dict[str, Any]) -> torch.Tensor:
    with torch.inference_mode():
        return loaded.model(**inputs, logits_to_keep=1).logits[:, -1].float()


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request: pytest.FixtureRequest, tiny_models: dict[str, Path]) -> LoadedModel:
    return load_model(ModelConfig(adapter=request.param, path=str(tiny_models[request.param])))


def test_recorded_rows_equal_the_eager_attention_and_change_no_logit(loaded: LoadedModel) -> None:
    inputs = _batch(loaded)
    reference = _logits(loaded, inputs)
    n = len(loaded.layers)
    with attention_control(loaded.layers, record=frozenset(range(n))) as control:
        recorded = _logits(loaded, inputs)
    assert (recorded - reference).abs().max().item() <= TOLERANCE
    implementation = loaded.model.config._attn_implementation
    loaded.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            eager = loaded.model(**inputs, output_attentions=True).attentions
    finally:
        loaded.model.set_attn_implementation(implementation)
    image = loaded.family.image_positions(loaded.model, inputs["input_ids"])
    assert image.sum(-1).min() > 0
    for layer in range(n):
        row = control.rows[layer]
        assert row.shape == eager[layer][:, :, -1].shape
        assert (row - eager[layer][:, :, -1].float()).abs().max().item() <= TOLERANCE, f"layer {layer}"
        assert torch.allclose(row.sum(-1), torch.ones_like(row.sum(-1)), atol=1e-5)


def test_a_knockout_of_no_layer_changes_nothing(loaded: LoadedModel) -> None:
    inputs = _batch(loaded)
    image = loaded.family.image_positions(loaded.model, inputs["input_ids"])
    text = inputs["attention_mask"].bool() & ~image
    with attention_control(loaded.layers, knockout=Knockout(frozenset(), text, image)):
        knocked = _logits(loaded, inputs)
    assert (knocked - _logits(loaded, inputs)).abs().max().item() <= TOLERANCE


def test_blocking_every_layer_makes_the_answer_independent_of_the_image(loaded: LoadedModel) -> None:
    inputs = _batch(loaded)
    other = _batch(loaded, seed=1)  # the same prompts and geometry, other pixels
    assert torch.equal(inputs["input_ids"], other["input_ids"])
    image = loaded.family.image_positions(loaded.model, inputs["input_ids"])
    text = inputs["attention_mask"].bool() & ~image
    every = Knockout(frozenset(range(len(loaded.layers))), text, image)
    assert (_logits(loaded, inputs) - _logits(loaded, other)).abs().max().item() > 1e-3  # the image matters
    with attention_control(loaded.layers, knockout=every):
        one, two = _logits(loaded, inputs), _logits(loaded, other)
    assert (one - two).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("layer", [0, 1])
def test_a_window_leaves_the_points_up_to_its_first_layer_untouched(loaded: LoadedModel, layer: int) -> None:
    inputs = _batch(loaded)
    image = loaded.family.image_positions(loaded.model, inputs["input_ids"])
    last = torch.zeros_like(image)
    last[:, -1] = True

    def states(knockout: Knockout | None) -> dict[int, torch.Tensor]:
        seen: dict[int, torch.Tensor] = {}

        def keep(index: int, hidden: torch.Tensor, args: Any, kwargs: Any) -> None:
            seen[index] = hidden[:, -1].float().clone()

        with attention_control(loaded.layers, knockout=knockout), reading(loaded.layers, loaded.final_norm, keep):
            _logits(loaded, inputs)
        return seen

    plain = states(None)
    knocked = states(Knockout(frozenset({layer}), last, image))
    for point in range(layer + 1):  # point p is the input of decoder layer p: layers before `layer` ran as usual
        assert torch.equal(knocked[point], plain[point]), f"point {point} changed by a knockout in layer {layer}"
    assert (knocked[layer + 1] - plain[layer + 1]).abs().max().item() > 1e-4, "the blocked layer changed nothing"


def test_a_model_whose_attention_bypasses_the_registry_is_named(loaded: LoadedModel) -> None:
    inputs = _batch(loaded)
    assert check_attention(loaded.layers, lambda: _logits(loaded, inputs)) is None
    module = loaded.layers[1].self_attn
    original = module.forward

    def custom(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        return module.o_proj(hidden_states), None  # a mixing that never calls the registry

    module.forward = custom
    try:
        reason = check_attention(loaded.layers, lambda: _logits(loaded, inputs))
    finally:
        module.forward = original
    assert reason is not None and "[1]" in reason and "registry" in reason and "\n" not in reason


def test_sink_tokens_are_found_by_their_norm_and_kept_apart_from_the_image_mass() -> None:
    image = torch.tensor([[False, True, True, True, True, False]])
    capture = Capture(image_mask=image, features={"last_token": [None] * 4, "image_mean": [None] * 4})
    hidden = torch.ones(1, 6, 8)
    hidden[0, 2] *= 50.0  # a massive activation on image token 1 (sequence position 2)
    capture.record(1, hidden)
    assert sinks(capture, 20.0).tolist() == [[False, False, True, False, False, False]]
    assert not sinks(capture, 60.0).any()

    row = torch.tensor([[[0.1, 0.1, 0.5, 0.1, 0.1, 0.1]]])  # (batch, heads, seq): half the mass on the sink
    control = Control(modules={}, implementation="eager", record=frozenset({0}), rows={0: row})
    buffers = AttentionBuffers.empty(rows=1, levels=1, layers=1, heads=1)
    buffers.fill([0], 0, control, capture, 20.0)
    assert buffers.image[0, 0, 0, 0] == pytest.approx(0.3)  # image tokens 0, 2, 3: the sink is not image mass
    assert buffers.sink[0, 0, 0, 0] == pytest.approx(0.5)
    assert buffers.sink_token[0, 0, 0] == 1 and (buffers.sink_token[0, 0, 1:] == -1).all()
    assert buffers.sink_ratio[0, 0, 0] == pytest.approx(50.0)
