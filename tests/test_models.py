"""Tiny models of both families through the real transformers code paths; loading errors; prompt snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, slice_json
from transformers import AutoModelForImageTextToText, AutoProcessor

from blindspot.config import ModelConfig
from blindspot.models.families import FAMILIES
from blindspot.models.inference import Request, encode_batch, generate_batch, label_logprobs, option_token_ids
from blindspot.models.loading import ModelLoadError, load_model
from blindspot.models.prompts import render_prompt
from blindspot.models.tiny import build_tiny_model
from blindspot.prompts import PROMPTS, question_text

FAMILY_NAMES = ("qwen2_5_vl", "llava_next")
SNAPSHOTS = REPO / "tests" / "snapshots" / "prompts.json"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_tiny_model_loads_back_with_auto_classes(tiny_models: dict[str, Path], family: str) -> None:
    processor = AutoProcessor.from_pretrained(tiny_models[family], local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(tiny_models[family], local_files_only=True)
    assert type(model).__name__ == FAMILIES[family].model_class
    assert len(FAMILIES[family].decoder_layers(model)) == 2
    assert processor.chat_template


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_image_tokens_agree_between_processor_and_model(tiny_models: dict[str, Path], family: str) -> None:
    """The processor expands the image placeholder into exactly as many tokens as the vision tower produces;
    a mismatch makes the forward pass fail."""
    loaded = load_model(ModelConfig(adapter=family, path=str(tiny_models[family])))
    rng = np.random.default_rng(0)
    prompt = render_prompt(loaded.processor, "What colour is it?", n_images=1)
    for height, width in [(112, 84), (56, 112), (224, 224)]:
        inputs = encode_batch(loaded, [Request(prompt, (rng.integers(0, 255, (height, width, 3), np.uint8),), None)])
        positions = loaded.family.image_positions(loaded.model, inputs["input_ids"])
        assert positions.sum() > 0
        with torch.inference_mode():
            out = loaded.model(**inputs)
        assert out.logits.shape[:2] == inputs["input_ids"].shape
        if family == "qwen2_5_vl":  # M-RoPE needs mm_token_type_ids, or it silently falls back to 1D positions
            assert "mm_token_type_ids" in inputs
            grid = inputs["image_grid_thw"][0]
            assert positions.sum() == grid.prod() // 4  # 2x2 spatial merge
            assert tuple(grid[1:] * 14) == (height, width)  # working-size images are not resized again


def test_tiny_models_are_deterministic(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    for family in FAMILY_NAMES:
        again = build_tiny_model(family, tmp_path / family)
        assert (again / "model.safetensors").read_bytes() == (tiny_models[family] / "model.safetensors").read_bytes()
        assert (again / "tokenizer.json").read_text() == (tiny_models[family] / "tokenizer.json").read_text()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_option_labels_are_single_tokens(tiny_models: dict[str, Path], family: str) -> None:
    loaded = load_model(ModelConfig(adapter=family, path=str(tiny_models[family])))
    ids = option_token_ids(loaded.tokenizer, ("A", "B", "C", "D"))
    assert all(ids.values()) and len({i for t in ids.values() for i in t}) == sum(len(t) for t in ids.values())
    yes_no = option_token_ids(loaded.tokenizer, ("yes", "no"))
    for label, token_ids in yes_no.items():
        for token_id in token_ids:
            assert label.startswith(loaded.tokenizer.decode([token_id]).strip().lower())


def test_generation_returns_text_and_option_logprobs(tiny_models: dict[str, Path]) -> None:
    loaded = load_model(ModelConfig(adapter="llava_next", path=str(tiny_models["llava_next"])))
    image = np.zeros((56, 56, 3), np.uint8)
    prompt = render_prompt(loaded.processor, question_text("Q?", ["x", "y"], "multiple_choice", "v1"), 1)
    (response,) = generate_batch(loaded, [Request(prompt, (image,), ("A", "B"))], max_new_tokens=4)
    assert isinstance(response.text, str)
    assert set(response.option_logprobs) == {"A", "B"}
    assert all(v < 0 for v in response.option_logprobs.values())


def test_missing_model_is_one_line_with_the_fetch_command(tmp_path: Path) -> None:
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tmp_path / "qwen7b"), hub_id="Qwen/Qwen2.5-VL-7B-Instruct")
    with pytest.raises(ModelLoadError) as info:
        load_model(model)
    assert str(info.value) == (
        f"model.path: no such model directory '{tmp_path / 'qwen7b'}'; fetch it with: hf download "
        f"Qwen/Qwen2.5-VL-7B-Instruct --local-dir {tmp_path / 'qwen7b'}"
    )


def test_load_errors_are_one_line(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"^model.path: '.*empty' has no config.json"):
        load_model(ModelConfig(adapter="auto", path=str(empty)))
    (empty / "config.json").write_text(json.dumps({"model_type": "llava_next"}))
    (empty / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="never loads pickled"):
        load_model(ModelConfig(adapter="auto", path=str(empty)))
    with pytest.raises(ModelLoadError, match=r"expects model_type qwen2_5_vl, but .* is 'llava_next'"):
        load_model(ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["llava_next"])))
    loaded = load_model(ModelConfig(adapter="auto", path=str(tiny_models["llava_next"])))
    assert loaded.tokenizer.padding_side == "left" and loaded.device.type == "cpu"


def test_cli_predict_names_the_model_key(small_benchmark, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from blindspot.cli import main

    text = slice_json("predict", model={"adapter": "qwen2_5_vl", "path": "data/models/q"}, predict={}, prompt={})
    inputs = ["--item-table", str(small_benchmark["items"]), "--render", str(small_benchmark["render"])]
    out = ["--predictions", str(tmp_path / "o.parquet")]
    assert main(["predict", "--model", "qwen", "--bench", "b", "--slice", text, *inputs, *out]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "blindspot predict: error: models.qwen.path: no such model directory 'data/models/q'; "
        "fetch it with: hf download ORG/NAME --local-dir data/models/q"
    )


def rendered_prompts(tiny_models: dict[str, Path]) -> dict[str, str]:
    cases = {
        "multiple_choice": ("What colour is the circle?", ["red", "green", "blue", "yellow"]),
        "yes_no": ("Is there a circle in the image?", None),
        "open": ("What is written on the sign?", None),
        "count": ("How many circles are there?", None),
        "yes_no_instructed": ("Is there a circle in the image? Please answer yes or no.", None),  # MME's layout
    }
    out = {}
    for family in FAMILY_NAMES:
        processor = AutoProcessor.from_pretrained(tiny_models[family], local_files_only=True)
        for version in PROMPTS:
            for case, (question, options) in cases.items():
                answer_type = case.removesuffix("_instructed")
                text = question_text(question, options, answer_type, version)
                for n_images, name in ((1, "image"), (0, "none"), (2, "two_images")):
                    if n_images == 2 and answer_type != "multiple_choice":
                        continue
                    out[f"{family}/{version}/{case}/{name}"] = render_prompt(processor, text, n_images)
    return out


def test_prompt_snapshots(tiny_models: dict[str, Path], request: pytest.FixtureRequest) -> None:
    """The exact rendered prompt for each answer type, model family and image condition. A deliberate change is a
    new prompt version; refresh with `pytest tests/test_models.py --update-snapshots`."""
    actual = rendered_prompts(tiny_models)
    if request.config.getoption("--update-snapshots"):
        SNAPSHOTS.parent.mkdir(exist_ok=True)
        SNAPSHOTS.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    assert json.loads(SNAPSHOTS.read_text()) == actual


def test_label_logprobs_sum_the_spellings(tiny_models: dict[str, Path]) -> None:
    """log P(label) adds the probability of every spelling that starts it ("A", " A", "a", ...): with 0.1 on each
    of A's k first tokens and 0.05 on each of B's m, P(A) = 0.1 k and P(B) = 0.05 m."""
    tokenizer = AutoProcessor.from_pretrained(tiny_models["qwen2_5_vl"]).tokenizer
    ids = option_token_ids(tokenizer, ("A", "B"))
    k, m = len(ids["A"]), len(ids["B"])
    assert k > 1  # several spellings, so summing matters
    logprobs = torch.full((len(tokenizer),), -30.0)
    logprobs[list(ids["A"])] = np.log(0.1)
    logprobs[list(ids["B"])] = np.log(0.05)
    got = label_logprobs(tokenizer, logprobs, ("A", "B"))
    assert got["A"] == pytest.approx(np.log(0.1 * k), abs=1e-6)
    assert got["B"] == pytest.approx(np.log(0.05 * m), abs=1e-6)
