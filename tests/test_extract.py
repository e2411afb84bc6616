"""Hidden-state capture and the extract stage: fidelity to transformers, store layout, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import zarr
from conftest import with_a_long_question

import blindspot.stages.extract as extract_module
from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ExtractConfig, ModelConfig, PromptConfig
from blindspot.models.capture import LAYER_CONVENTION, capture_residual_stream
from blindspot.models.inference import Request, encode_batch
from blindspot.models.loading import load_model
from blindspot.models.prompts import render_prompt
from blindspot.stages.extract import ExtractError, block_items, extract_benchmark, resolve_levels
from blindspot.store.hidden import HiddenRangeError, HiddenStore, HiddenStoreWriter
from blindspot.store.render import RenderStore


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_next"])
def test_captured_states_equal_output_hidden_states(tiny_models, family: str) -> None:
    loaded = load_model(ModelConfig(adapter=family, path=str(tiny_models[family])))
    rng = np.random.default_rng(0)
    requests = [
        Request(
            render_prompt(loaded.processor, "What colour?" + " x" * i, 1),
            (rng.integers(0, 255, (112, 84 + 28 * i, 3), dtype=np.uint8),),
            None,
        )
        for i in range(3)
    ]
    inputs = encode_batch(loaded, requests)
    mask = loaded.family.image_positions(loaded.model, inputs["input_ids"])
    with torch.inference_mode(), capture_residual_stream(loaded.layers, loaded.final_norm, mask, keep_full=True) as c:
        out = loaded.model(**inputs, output_hidden_states=True)
    assert len(c.full) == len(out.hidden_states) == len(loaded.layers) + 1
    for mine, reference in zip(c.full, out.hidden_states, strict=True):
        assert torch.equal(mine, reference)  # exactly, every layer including 0 (embeddings) and L (final norm)
    last = c.stacked("last_token")
    assert torch.equal(last, torch.stack([h[:, -1] for h in out.hidden_states], 1).float())
    image_mean = c.stacked("image_mean")
    m = mask[..., None].float()
    expected = torch.stack([(h * m).sum(1) / m.sum(1) for h in out.hidden_states], 1)
    torch.testing.assert_close(image_mean, expected)


def test_extract_store_layout_and_attrs(tiny_models, small_benchmark, tmp_path: Path) -> None:
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), batch_size=4)
    out = tmp_path / "h.zarr"
    summary = extract_benchmark(
        "m",
        "b",
        model,
        ExtractConfig(chunk_bytes=4096),
        PromptConfig(),
        small_benchmark["items"],
        small_benchmark["render"],
        out,
        scoring=GENERIC_SCORING,
        progress=False,
    )
    assert summary["levels"] == ["blur/0", "blur/1"]  # clean and the most severe blur level
    group = zarr.open_group(str(out), mode="r")
    for name in ("last_token", "image_mean"):
        array = group[name]
        assert array.dtype == np.float16 and array.shape == (6, 2, 3, 64)
        assert array.metadata.dimension_names == ("item", "level", "layer", "hidden")
        assert array.chunks == (block_items(64, 4096, 6), 1, 1, 64)
        assert np.isfinite(array[:]).all()
    assert [str(x) for x in group["layer"][:]] == ["0", "1", "2"]
    assert group.attrs["layer_convention"] == LAYER_CONVENTION
    record = group.attrs["provenance"]
    assert record["stage"] == "extract" and record["model"]["n_layers"] == 2 and len(record["config_hash"]) == 16
    assert not (out / "blocks_done.json").exists()


def test_an_item_over_the_prompt_cap_is_left_out_and_said(
    tiny_models, small_benchmark, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """As in predict, a prompt longer than max_prompt_tokens is never run: the store holds the other items, and the
    console and the store's provenance say how many were left out."""
    path, long_id = with_a_long_question(small_benchmark["items"], tmp_path / "items.parquet")
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), batch_size=4, max_prompt_tokens=256)
    out = tmp_path / "h.zarr"
    summary = extract_benchmark("m", "b", model, ExtractConfig(), PromptConfig(), path, small_benchmark["render"], out,
                                scoring=GENERIC_SCORING, progress=False)  # fmt: skip
    store = HiddenStore(out)
    assert summary["items"] == 5 and long_id not in store.item_ids and len(store.item_ids) == 5
    assert summary["left_out"].startswith("1 items left out: prompt longer than 256 tokens")
    assert "1 items left out: prompt longer than 256 tokens" in capsys.readouterr().out
    assert np.isfinite(store.read("last_token")).all()


def test_extract_resumes_from_finished_blocks(
    tiny_models, small_benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ModelConfig(adapter="llava_next", path=str(tiny_models["llava_next"]), batch_size=2)
    config = ExtractConfig(chunk_bytes=2 * 64 * 2)  # 2 items per block: 3 blocks
    reference = tmp_path / "ref.zarr"
    extract_benchmark(
        "m",
        "b",
        model,
        config,
        PromptConfig(),
        small_benchmark["items"],
        small_benchmark["render"],
        reference,
        scoring=GENERIC_SCORING,
        progress=False,
    )

    real = extract_module.encode_batch
    calls = {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # the attention check takes 1 call, each block 2 levels x 1 batch = 2; die in block 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "encode_batch", dies)
    out = tmp_path / "out.zarr"

    def extract() -> None:
        items, render = small_benchmark["items"], small_benchmark["render"]
        extract_benchmark(
            "m", "b", model, config, PromptConfig(), items, render, out, scoring=GENERIC_SCORING, progress=False
        )

    with pytest.raises(KeyboardInterrupt):
        extract()
    assert not out.exists()
    (partial,) = tmp_path.glob(".out.zarr.resume-*")
    assert json.loads((partial / "blocks_done.json").read_text()) == [0, 1]
    calls["n"] = -1000
    extract()
    assert calls["n"] == -1000 + 1 + 2  # the attention check, then only block 2: 2 levels x 1 batch
    a, b = zarr.open_group(str(reference), mode="r"), zarr.open_group(str(out), mode="r")
    for name in ("last_token", "image_mean", "attention_image", "attention_sink", "sink_token"):
        np.testing.assert_array_equal(a[name][:], b[name][:])


def test_full_token_states_are_opt_in_with_roles(tiny_models, small_benchmark, tmp_path: Path) -> None:
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), batch_size=4)
    out = tmp_path / "h.zarr"
    extract_benchmark(
        "m",
        "b",
        model,
        ExtractConfig(full_items=2, max_tokens=128),
        PromptConfig(),
        small_benchmark["items"],
        small_benchmark["render"],
        out,
        scoring=GENERIC_SCORING,
        progress=False,
    )
    group = zarr.open_group(str(out), mode="r")
    assert group["token_states"].shape == (2, 2, 3, 128, 64)
    roles = group["token_role"][:]
    assert set(np.unique(roles)) <= {0, 1, 2, 3}
    store = RenderStore(small_benchmark["render"])
    items = pl.read_parquet(small_benchmark["items"])
    for i in range(2):  # one merged token per 28 x 28 pixels of the working image (14 px patches, 2 x 2 merge)
        index = store.index_of(items["image_keys"][i][0])
        expected = int(store.heights[index]) // 28 * (int(store.widths[index]) // 28)
        assert ((roles[i] == 2).sum(-1) == expected).all()
    assert (roles == 3).any()  # the question's own tokens are found
    states = group["token_states"][0, 0]
    np.testing.assert_array_equal(states[:, -1], group["last_token"][0, 0])  # the last position is the last token


def test_levels_resolve_and_fail_clearly(small_benchmark) -> None:
    store = RenderStore(small_benchmark["render"])
    assert resolve_levels(store, ["blur/0", "blur/-1", "noise/1"]) == ["blur/0", "blur/1", "noise/1"]
    with pytest.raises(ExtractError, match=r"extract.levels: 'blur/5' is not available .* \(not rendered\)"):
        resolve_levels(store, ["blur/5"])


def _writer(path: Path, dtype: str) -> HiddenStoreWriter:
    return HiddenStoreWriter.open(path, ["a", "b", "c", "d"], ["g"] * 4, ["blur/0"], 3, 8, 2, 0, 16, {}, dtype=dtype)


def _block(scale: float, layer: int = 1) -> dict[str, np.ndarray]:
    values = np.ones((2, 1, 3, 8), np.float32)
    values[:, :, layer, 0] = scale
    return {"last_token": values, "image_mean": values.copy()}


def test_large_activations_are_stored_in_float32_not_as_infinities(tmp_path: Path) -> None:
    writer = _writer(tmp_path / "h.zarr", "auto")
    writer.write_block(0, slice(0, 2), _block(1e5))
    writer.write_block(1, slice(2, 4), _block(3e5))
    writer.commit(tmp_path / "final.zarr")
    store = HiddenStore(tmp_path / "final.zarr")
    assert store.attrs["dtype"] == "float32"
    values = store.read("last_token")
    assert np.isfinite(values).all() and values[0, 0, 1, 0] == 1e5 and values[2, 0, 1, 0] == 3e5


def test_small_activations_stay_float16(tmp_path: Path) -> None:
    writer = _writer(tmp_path / "h.zarr", "auto")
    writer.write_block(0, slice(0, 2), _block(100.0))
    assert writer.group["last_token"].dtype == np.float16


@pytest.mark.parametrize("dtype", ["float16", "auto"])
def test_overflowing_float16_names_the_layer(tmp_path: Path, dtype: str) -> None:
    writer = _writer(tmp_path / "h.zarr", dtype)
    if dtype == "auto":
        writer.write_block(0, slice(0, 2), _block(10.0))  # auto chose float16 on a calm first block
    with pytest.raises(HiddenRangeError, match=r"^extract.dtype: last_token at layer 2 reaches 1e\+05"):
        writer.write_block(1, slice(2, 4), _block(1e5, layer=2))
