"""The knockout stage: its windows, replay against whole forward passes, the identities (a window of every layer
makes the answer independent of the image), the per-window table by hand, and a model whose attention cannot be
masked left out in one row that says why."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch
from conftest import slice_json

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import KnockoutConfig, ModelConfig, PromptConfig
from blindspot.models.attention import Knockout, attention_control
from blindspot.models.inference import Request, encode_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.replay import option_logprobs, record_run, replay
from blindspot.prompts import option_labels
from blindspot.stages.knockout import Window, gold_margin, knockout_benchmark, query_positions, windows
from blindspot.stages.slices import KnockoutSlice

FAMILIES = ("qwen2_5_vl", "llava_next")


@pytest.fixture(scope="module")
def loaded(tiny_models: dict[str, Path]) -> dict[str, LoadedModel]:
    return {f: load_model(ModelConfig(adapter=f, path=str(tiny_models[f]))) for f in FAMILIES}  # type: ignore[arg-type]


def _slice(**knockout) -> KnockoutSlice:
    return KnockoutSlice.model_validate_json(
        slice_json(
            "knockout",
            model={"adapter": "qwen2_5_vl", "path": "unused", "batch_size": 4},
            knockout=KnockoutConfig.model_validate({"bootstrap": 50, **knockout}),
            prompt={},
            seed=0,
        )
    )


def _job(model: LoadedModel, small_benchmark: dict[str, Path], out: Path) -> ModelJob:
    return ModelJob.open("knockout", "m", "small", model.config, PromptConfig(), {}, small_benchmark["items"],
                         small_benchmark["render"], out, loaded=model, scoring=GENERIC_SCORING)  # fmt: skip


def _where(frame: pl.DataFrame, **equal: object) -> pl.DataFrame:
    return frame.filter(*(pl.col(name) == value for name, value in equal.items()))


def test_windows_slide_over_every_layer_and_end_with_all_of_them() -> None:
    assert windows([1], 3) == [Window(0, 1), Window(1, 1), Window(2, 1), Window(0, 3)]
    assert windows([2, 5], 3) == [Window(0, 2), Window(1, 2), Window(0, 3)]  # a size past the layers is skipped
    assert Window(2, 2).layers == frozenset({2, 3})


@pytest.mark.parametrize("family", FAMILIES)
def test_replay_from_the_first_blocked_layer_equals_a_whole_forward_pass(
    family: str, loaded: dict[str, LoadedModel], small_benchmark: dict[str, Path], tmp_path: Path
) -> None:
    model = loaded[family]
    job = _job(model, small_benchmark, tmp_path / "k.parquet")
    items = [0, 1, 2]
    requests = [Request(job.prompts.get(i, True), tuple(job.images(i, 0, job.levels(i))), None) for i in items]
    inputs = encode_batch(model, requests)
    run = record_run(model, inputs)
    image = model.family.image_positions(model.model, inputs["input_ids"])
    questions = [job.items[i]["question"] for i in items]
    for position in ("last", "question", "text"):
        queries = query_positions(model, inputs, image, questions, position)
        assert queries[:, -1].all() and not (queries & image).any()
        for layer in range(len(model.layers)):
            knock = Knockout(frozenset({layer}), queries, image)
            with attention_control(model.layers, knockout=knock), torch.inference_mode():
                whole = model.model(**inputs, logits_to_keep=1).logits[:, -1].float()
                replayed = replay(model, run, layer, run.states[layer])
            torch.testing.assert_close(replayed.float(), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_stage_blocks_the_window_it_names_and_every_layer_removes_the_image(
    family: str, loaded: dict[str, LoadedModel], small_benchmark: dict[str, Path], tmp_path: Path
) -> None:
    model = loaded[family]
    config = _slice(conditions=["blur/0", "blur/1"], windows=[1], positions=["last", "text"])
    outputs = {"knockout": tmp_path / "k.parquet", "per_item": tmp_path / "k.items.parquet"}
    line = knockout_benchmark("m", "small", config, small_benchmark["items"], small_benchmark["render"], outputs,
                              loaded=model, progress=False)  # fmt: skip
    n_layers = len(model.layers)
    items = pl.read_parquet(outputs["per_item"])
    n_items = items["item_id"].n_unique()
    assert items.height == n_items * 2 * 2 * (n_layers + 1) and "knocked out m on small" in line
    # every text token blocked in every layer: the answer no longer depends on the image (two blur levels)
    every = items.filter((pl.col("position") == "text") & (pl.col("window_size") == n_layers)).sort("item_id")
    clean, blurred = (every.filter(pl.col("condition") == c)["knocked_margin"].to_numpy() for c in ("blur/0", "blur/1"))
    assert abs(clean - blurred).max() <= 1e-5
    assert abs(every.filter(pl.col("condition") == "blur/0")["margin"].to_numpy() - every.filter(
        pl.col("condition") == "blur/1")["margin"].to_numpy()).max() > 1e-4  # fmt: skip
    # a one-layer window blocks that layer: the stage's margin equals a forward pass with that layer blocked
    job = _job(model, small_benchmark, tmp_path / "x.parquet")
    first = job.items[0]["item_id"]
    request = Request(job.prompts.get(0, True), tuple(job.images(0, 0, job.levels(0))), None)
    inputs = encode_batch(model, [request])
    image = model.family.image_positions(model.model, inputs["input_ids"])
    last = torch.zeros_like(image)
    last[:, -1] = True
    labels = [tuple(option_labels(job.items[0]["answer_type"], job.items[0]["options"]) or ())]
    for layer in range(n_layers):
        knock = Knockout(frozenset({layer}), last, image)
        with attention_control(model.layers, knockout=knock), torch.inference_mode():
            logits = model.model(**inputs, logits_to_keep=1).logits[:, -1].float()
        expected = gold_margin(option_logprobs(model, logits, labels)[0], job.items[0]["answer"])
        row = _where(items, item_id=first, condition="blur/0", position="last", window_size=1, window_start=layer)
        assert row["knocked_margin"].item() == pytest.approx(expected, abs=1e-4), f"layer {layer}"
    # the table, by hand
    table = pl.read_parquet(outputs["knockout"])
    assert table.height == 2 * 2 * (n_layers + 1)
    first_window = {"condition": "blur/0", "position": "last", "window_start": 0, "window_size": 1}
    part, row = _where(items, **first_window), _where(table, **first_window)
    assert row["flip_rate"].item() == pytest.approx(part["flipped"].mean())
    assert row["delta_margin"].item() == pytest.approx((part["knocked_margin"] - part["margin"]).mean())
    whole = table.filter(pl.col("window_size") == n_layers)
    assert whole["agree_no_image"].drop_nulls().len() == whole.height and whole["note"].drop_nulls().len()


def test_a_model_whose_attention_cannot_be_masked_is_left_out_in_one_row(
    loaded: dict[str, LoadedModel], small_benchmark: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    import blindspot.stages.knockout as knockout_module

    monkeypatch.setattr(knockout_module, "check_attention", lambda layers, forward: "its attention is its own")
    outputs = {"knockout": tmp_path / "k.parquet", "per_item": tmp_path / "k.items.parquet"}
    line = knockout_benchmark("m", "small", _slice(), small_benchmark["items"], small_benchmark["render"], outputs,
                              loaded=loaded["qwen2_5_vl"], progress=False)  # fmt: skip
    assert "m left out: its attention is its own" in line and "\n" not in line
    table = pl.read_parquet(outputs["knockout"])
    assert table.height == 1 and table["window_size"].item() == 0 and "left out" in table["note"].item()
    assert pl.read_parquet(outputs["per_item"]).is_empty()
