"""The patch stage: identities, replay against whole forward passes, an independent implementation (nnsight), the
per-item measures by hand, and the stage end to end with its resume shards."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import slice_json

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ModelConfig, PatchConfig, PromptConfig
from blindspot.models.inference import Request, encode_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.replay import record_run, replay
from blindspot.stages.patch import (
    PatchError,
    item_measures,
    patch_benchmark,
    patch_state,
    patched_forward,
    position_mask,
)
from blindspot.stages.slices import PatchSlice

FAMILIES = ("qwen2_5_vl", "llava_next")


@pytest.fixture(scope="module")
def loaded(tiny_models: dict[str, Path]) -> dict[str, LoadedModel]:
    return {f: load_model(ModelConfig(adapter=f, path=str(tiny_models[f]))) for f in FAMILIES}  # type: ignore[arg-type]


def _job(loaded: LoadedModel, small_benchmark: dict[str, Path], tmp_path: Path) -> ModelJob:
    return ModelJob.open(
        "patch",
        "m",
        "small",
        loaded.config,
        PromptConfig(),
        {},
        small_benchmark["items"],
        small_benchmark["render"],
        tmp_path / "out.parquet",
        loaded=loaded,
        scoring=GENERIC_SCORING,
    )


def _inputs(job: ModelJob, condition: tuple[str, int], items: list[int]) -> dict[str, torch.Tensor]:
    index = job.store.condition_index(*condition)
    requests = [Request(job.prompts.get(i, True), tuple(job.images(i, index, job.levels(i))), None) for i in items]
    return encode_batch(job.loaded, requests)


@pytest.mark.parametrize("family", FAMILIES)
def test_identities(family: str, loaded: dict[str, LoadedModel], small_benchmark: dict[str, Path], tmp_path: Path):
    job = _job(loaded[family], small_benchmark, tmp_path)
    model = job.loaded
    clean, blurred = _inputs(job, ("blur", 0), [0, 1, 2]), _inputs(job, ("blur", 1), [0, 1, 2])
    source, target = record_run(model, clean), record_run(model, blurred)
    assert not torch.allclose(source.logits, target.logits, atol=1e-4)  # the conditions differ: the test can fail
    n = len(model.layers) + 1
    for layer in range(n):
        for position in ("image", "last", "all"):
            mask = position_mask(model, target.input_ids, position)  # type: ignore[arg-type]
            own = patch_state(target.states[layer], target.states[layer], mask)
            # patching a run with its own states changes no logit, by replay and by a whole forward pass
            torch.testing.assert_close(replay(model, target, layer, own), target.logits, rtol=0, atol=1e-5)
            torch.testing.assert_close(patched_forward(model, blurred, layer, own), target.logits, rtol=0, atol=1e-5)
            # replay gives what a whole forward pass with the same patch gives
            patched = patch_state(target.states[layer], source.states[layer], mask)
            torch.testing.assert_close(
                replay(model, target, layer, patched),
                patched_forward(model, blurred, layer, patched),
                rtol=0,
                atol=1e-5,
            )
        # all-position patching at any layer reproduces the source run
        everything = patch_state(
            target.states[layer], source.states[layer], position_mask(model, target.input_ids, "all")
        )
        torch.testing.assert_close(replay(model, target, layer, everything), source.logits, rtol=0, atol=1e-5)
    # after the final norm only the last position reaches the logits: patching it there gives the source's logits
    last = patch_state(target.states[-1], source.states[-1], position_mask(model, target.input_ids, "last"))
    torch.testing.assert_close(replay(model, target, n - 1, last), source.logits, rtol=0, atol=1e-5)
    # image positions exist and are the family's image token
    assert position_mask(model, target.input_ids, "image").sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_nnsight_agrees(family: str, tiny_models: dict[str, Path], small_benchmark: dict[str, Path], tmp_path: Path):
    """The same intervention written in nnsight (which patches by wrapping module forwards, not through our hooks):
    the output of decoder layer 0 (layer index 1) replaced at image positions by the clean run's, so decoder layer 1
    reads them. A model of its own: nnsight wraps the modules it traces."""
    nnsight = pytest.importorskip("nnsight")
    own = load_model(ModelConfig(adapter=family, path=str(tiny_models[family])))  # type: ignore[arg-type]
    job = _job(own, small_benchmark, tmp_path)
    model = job.loaded
    clean, blurred = _inputs(job, ("blur", 0), [0, 1]), _inputs(job, ("blur", 1), [0, 1])
    source, target = record_run(model, clean), record_run(model, blurred)
    layer = 1
    mask = position_mask(model, target.input_ids, "image")
    ours = replay(model, target, layer, patch_state(target.states[layer], source.states[layer], mask))

    wrapped = nnsight.NNsight(model.model)
    decoder = wrapped.model.language_model.layers[layer - 1]
    with torch.inference_mode():
        with wrapped.trace(**clean, use_cache=False):
            saved = decoder.output.save()
        clean_state = saved[0] if isinstance(saved, tuple) else saved
        with wrapped.trace(**blurred, use_cache=False):
            out = decoder.output
            hidden = out[0] if isinstance(out, tuple) else out
            hidden[mask] = clean_state[mask]
            logits = wrapped.output.logits.save()
    theirs = logits[:, -1].float()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert not torch.allclose(ours, target.logits, atol=1e-4)  # the patch did something


def test_item_measures_by_hand():
    source = {"A": math.log(0.7), "B": math.log(0.2), "C": math.log(0.1)}
    target = {"A": math.log(0.2), "B": math.log(0.6), "C": math.log(0.2)}
    patched = {"A": math.log(0.5), "B": math.log(0.4), "C": math.log(0.1)}
    m = item_measures("A", source, target, patched)
    # target's top option is B: ld = log P(A) - log P(B)
    assert m["target_answer"] == "B" and m["source_answer"] == "A" and m["patched_answer"] == "A"
    assert m["ld_source"] == pytest.approx(math.log(0.7 / 0.2))
    assert m["ld_target"] == pytest.approx(math.log(0.2 / 0.6))
    assert m["ld_patched"] == pytest.approx(math.log(0.5 / 0.4))
    expected = (math.log(0.5 / 0.4) - math.log(0.2 / 0.6)) / (math.log(0.7 / 0.2) - math.log(0.2 / 0.6))
    assert m["restored"] == pytest.approx(expected)  # about 0.51
    assert m["flipped"] is True
    # source and target agree: nothing to restore, no flip to count
    same = item_measures("B", target, target, patched)
    assert same["restored"] is None and same["flipped"] is None
    # the same answer with a slightly different margin: a tiny denominator, so no ratio either
    nudged = {**target, "A": math.log(0.21)}
    assert item_measures("A", nudged, target, patched)["restored"] is None
    # the patch leaves the target's answer: not flipped, restored below 0.5
    kept = item_measures("A", source, target, target)
    assert kept["flipped"] is False and kept["restored"] == pytest.approx(0.0)


def test_item_measures_when_the_source_answers_wrong_and_the_differences_change_sign():
    """The neighbours of the hand case: a source that answers wrong (the restored fraction still runs from the
    target's logit difference to the source's, and 'flipped' means reaching the source's answer, not gold), and a
    target that answers gold (ld_target = 0) with a negative source difference."""
    lp = lambda a, b, c: {"A": math.log(a), "B": math.log(b), "C": math.log(c)}  # noqa: E731
    # gold A; the target answers B, the source (wrongly) C; the patch moves to C
    source, target, patched = lp(0.2, 0.1, 0.7), lp(0.3, 0.6, 0.1), lp(0.25, 0.25, 0.5)
    m = item_measures("A", source, target, patched)
    assert (m["source_answer"], m["target_answer"], m["patched_answer"]) == ("C", "B", "C")
    assert m["ld_source"] == pytest.approx(math.log(0.2 / 0.1))  # log P(A) - log P(B): B is the target's answer
    assert m["ld_target"] == pytest.approx(math.log(0.3 / 0.6))
    # toward the source's answer C, against the target's B: d = log P(C) - log P(B)
    d_source, d_target, d_patched = math.log(0.7 / 0.1), math.log(0.1 / 0.6), math.log(0.5 / 0.25)
    assert m["restored"] == pytest.approx((d_patched - d_target) / (d_source - d_target))
    assert m["flipped"] is True  # the source's answer (C) reached, though it is wrong
    # the patch lands on gold instead: not the source's answer, so not flipped
    assert item_measures("A", source, target, lp(0.6, 0.3, 0.1))["flipped"] is False
    # gold A; the target answers gold, the source answers B (the reverse pair): ld is gold against B, positive in
    # the target and negative in the source; the restored fraction runs from the target's ld to the source's
    source, target = lp(0.2, 0.7, 0.1), lp(0.6, 0.3, 0.1)
    half = item_measures("A", source, target, lp(0.4, 0.5, 0.1))
    assert half["ld_target"] == pytest.approx(math.log(0.6 / 0.3)) and half["ld_target"] > 0
    assert half["ld_source"] == pytest.approx(math.log(0.2 / 0.7)) and half["ld_source"] < 0
    assert half["ld_patched"] == pytest.approx(math.log(0.4 / 0.5))
    expected = (math.log(0.4 / 0.5) - math.log(0.6 / 0.3)) / (math.log(0.2 / 0.7) - math.log(0.6 / 0.3))
    assert half["restored"] == pytest.approx(expected) and 0 < half["restored"] < 1
    assert half["flipped"] is True and half["patched_answer"] == "B"
    assert item_measures("A", source, target, target)["restored"] == pytest.approx(0.0)
    assert item_measures("A", source, target, source)["restored"] == pytest.approx(1.0)


def _slice(**patch) -> PatchSlice:
    return PatchSlice.model_validate_json(
        slice_json(
            "patch",
            model={"adapter": "qwen2_5_vl", "path": "unused", "batch_size": 4},
            patch=PatchConfig.model_validate({"pairs": ["blur/0->blur/-1"], **patch}),
            prompt={},
            seed=0,
        )
    )


def test_patch_stage(loaded: dict[str, LoadedModel], small_benchmark: dict[str, Path], tmp_path: Path, monkeypatch):
    import blindspot.stages.patch as patch_module

    config = _slice(shard_size=4, positions=["image", "all"])
    outputs = {"patches": tmp_path / "p.parquet", "per_item": tmp_path / "p.items.parquet"}
    calls = []
    real = patch_module.patch_batch

    def failing(job, batch, *args, **kwargs):  # killed after the first shard
        calls.append(list(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, batch, *args, **kwargs)

    monkeypatch.setattr(patch_module, "patch_batch", failing)
    model = loaded["qwen2_5_vl"]
    with pytest.raises(KeyboardInterrupt):
        patch_benchmark(
            "m", "small", config, small_benchmark["items"], small_benchmark["render"], outputs, loaded=model
        )
    assert not outputs["patches"].exists() and not outputs["per_item"].exists()
    monkeypatch.setattr(patch_module, "patch_batch", real)
    counted = []
    monkeypatch.setattr(
        patch_module, "patch_batch", lambda job, batch, *a, **k: counted.append(batch) or real(job, batch, *a, **k)
    )
    _, note = patch_benchmark(
        "m", "small", config, small_benchmark["items"], small_benchmark["render"], outputs, loaded=model
    )
    assert counted == [[4, 5]]  # the first shard (items 0-3) was reused
    items = pl.read_parquet(outputs["per_item"])
    n_layers = len(model.layers) + 1
    assert items.height == 6 * 2 * n_layers and note is None
    table = pl.read_parquet(outputs["patches"])
    assert table.height == 2 * n_layers
    # all positions: the patched run is the source run, item by item and at every layer
    everything = items.filter(pl.col("position") == "all")
    assert everything["ld_patched"].to_list() == pytest.approx(everything["ld_source"].to_list(), abs=1e-4)
    assert everything["patched_answer"].to_list() == everything["source_answer"].to_list()
    assert all(v in (None, 1.0) for v in table.filter(pl.col("position") == "all")["flip_rate"].to_list())
    by_hand = items.filter((pl.col("position") == "image") & (pl.col("layer") == 0))["ld_patched"].mean()
    assert table.filter((pl.col("position") == "image") & (pl.col("layer") == 0))["ld"].item() == pytest.approx(by_hand)


def test_an_item_over_the_prompt_cap_is_not_patched_and_the_note_says_so(loaded, small_benchmark, tmp_path):
    from conftest import with_a_long_question

    from blindspot.stages.patch import patch_benchmark

    model = loaded["qwen2_5_vl"]
    words = 2 * model.config.max_prompt_tokens  # past the cap whatever the tokenizer makes of "why "
    path, long_id = with_a_long_question(small_benchmark["items"], tmp_path / "items.parquet", words=words)
    outputs = {"patches": tmp_path / "p.parquet", "per_item": tmp_path / "p.items.parquet"}
    _, note = patch_benchmark("m", "small", _slice(positions=["image"]), path, small_benchmark["render"], outputs,
                              loaded=model)  # fmt: skip
    assert note is not None and "1 items left out: prompt longer than" in note
    items = pl.read_parquet(outputs["per_item"])
    assert long_id not in items["item_id"].to_list() and items["item_id"].n_unique() == 5
    assert pl.read_parquet(outputs["patches"])["note"][0] == note


def test_patch_rejects_mismatched_tokens(loaded, small_benchmark, tmp_path, monkeypatch):
    """Levels of different pixel sizes would misalign image positions: a one-line error naming the item."""
    import blindspot.stages.patch as patch_module

    real = patch_module.record_run

    def shifted(model, inputs):
        run = real(model, inputs)
        if shifted.calls == 1:
            run.input_ids = run.input_ids.clone()
            run.input_ids[1, 3] += 1
        shifted.calls += 1
        return run

    shifted.calls = 0
    monkeypatch.setattr(patch_module, "record_run", shifted)
    outputs = {"patches": tmp_path / "p.parquet", "per_item": tmp_path / "p.items.parquet"}
    with pytest.raises(PatchError, match=r"item '[^']+': blur/0 and blur/1 give different token sequences"):
        patch_benchmark(
            "m",
            "small",
            _slice(),
            small_benchmark["items"],
            small_benchmark["render"],
            outputs,
            loaded=loaded["qwen2_5_vl"],
        )


def test_every_prompt_over_the_cap_names_max_prompt_tokens_not_patch_models(loaded, small_benchmark, tmp_path):
    """When every item with option labels is too long, the error names the key to change (the model's
    max_prompt_tokens), and never says the benchmark has no item with option labels."""
    import dataclasses

    from blindspot.errors import BlindspotError
    from blindspot.stages.patch import patch_benchmark
    from blindspot.stages.slices import user_key

    model = loaded["qwen2_5_vl"]
    short = dataclasses.replace(model, config=model.config.model_copy(update={"max_prompt_tokens": 16}))
    outputs = {"patches": tmp_path / "p.parquet", "per_item": tmp_path / "p.items.parquet"}
    with pytest.raises(BlindspotError) as caught:
        patch_benchmark("m", "small", _slice(), small_benchmark["items"], small_benchmark["render"], outputs,
                        loaded=short)  # fmt: skip
    line = user_key(str(caught.value), {"model": "qwen", "bench": "small"})
    assert line.startswith("models.qwen.max_prompt_tokens: every one of the 6 items of 'small' with option labels")
    assert "no item with option labels" not in line


def patch_rows(values: list[tuple[float, float, bool]]) -> pl.DataFrame:
    """One (pair, position, layer) cell: per item (ld_patched, restored, flipped)."""
    return pl.DataFrame(
        [
            {
                "source": "blur/0",
                "target": "blur/7",
                "position": "image",
                "layer": 3,
                "item_id": f"i{k}",
                "ld_patched": ld,
                "restored": restored,
                "flipped": flipped,
            }
            for k, (ld, restored, flipped) in enumerate(values)
        ]
    )


def test_patch_summary_keeps_the_sign_of_the_restored_fraction_and_its_interval() -> None:
    """Items whose patch moves the target most of the way toward the source (restored 0.8) and one that pushes it
    further from it (-0.4): the cell's restored fraction is their signed mean, inside its interval."""
    from types import SimpleNamespace

    from blindspot.stages.patch import patch_metrics

    values = [(1.5, 0.8, True)] * 9 + [(-2.0, -0.4, False)]
    items = [{"item_id": f"i{k}", "image_keys": [f"img{k}"]} for k in range(10)]
    (row,) = patch_metrics(patch_rows(values), items, SimpleNamespace(bootstrap=300, confidence=0.95), 0)
    assert row["restored"] == pytest.approx((9 * 0.8 - 0.4) / 10)
    assert row["restored_ci_low"] < row["restored"] < row["restored_ci_high"]
    assert row["ld"] == pytest.approx((9 * 1.5 - 2.0) / 10) and row["flip_rate"] == pytest.approx(0.9)
    # a patch that mostly pushes the target further from the source: a negative mean, kept negative
    away = [(-1.0, -0.3, False)] * 9 + [(2.0, 0.5, True)]
    (row,) = patch_metrics(patch_rows(away), items, SimpleNamespace(bootstrap=300, confidence=0.95), 0)
    assert row["restored"] == pytest.approx((9 * -0.3 + 0.5) / 10) and row["restored_ci_high"] < 0


def test_patch_intervals_cluster_items_by_source_image() -> None:
    from types import SimpleNamespace

    from blindspot.stages.patch import patch_metrics

    rng = np.random.default_rng(0)
    per_image = rng.normal(0.5, 0.4, 40)
    values = [(float(v), float(v), bool(v > 0.5)) for v in np.repeat(per_image, 5)]

    def restored_width(image_of) -> float:  # type: ignore[no-untyped-def]
        items = [{"item_id": f"i{k}", "image_keys": [image_of(k)]} for k in range(200)]
        (row,) = patch_metrics(patch_rows(values), items, SimpleNamespace(bootstrap=400, confidence=0.95), 0)
        return row["restored_ci_high"] - row["restored_ci_low"]

    assert restored_width(lambda k: f"img{k // 5}") > 1.6 * restored_width(lambda k: f"img{k}")
