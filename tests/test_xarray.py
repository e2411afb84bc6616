"""The Zarr stores open in xarray as labelled Datasets: every dimension that has labels has its coordinate, and
selecting by label reads the same values as blindspot's own readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ExtractConfig, ModelConfig, PromptConfig
from blindspot.stages.extract import extract_benchmark
from blindspot.store.hidden import HiddenStore
from blindspot.store.render import RenderStore

pytestmark = pytest.mark.filterwarnings("error")  # opening a store warns of nothing: consolidated, no foreign file


def test_the_render_store_opens_with_its_labels(small_benchmark: dict[str, Path]) -> None:
    ds = xr.open_zarr(small_benchmark["render"])
    store = RenderStore(small_benchmark["render"])
    assert list(ds.coords["condition"].values) == [c.key for c in store.conditions]
    assert list(ds.coords["image"].values) == store.image_keys
    assert ds.pixels.dims == ("image", "condition", "y", "x", "channel")
    key = store.image_keys[2]
    h, w = int(ds.height.sel(image=key)), int(ds.width.sel(image=key))
    blurred = ds.pixels.sel(image=key, condition="blur/1").values[:h, :w]
    index = store.condition_index("blur", 1)
    np.testing.assert_array_equal(blurred, store.group["pixels"][2, index, :h, :w, :])


@pytest.mark.slow
def test_the_hidden_store_opens_with_its_labels(
    tiny_models: dict[str, Path], small_benchmark: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "h.zarr"
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), batch_size=4)
    extract_benchmark("m", "b", model, ExtractConfig(), PromptConfig(), small_benchmark["items"],
                      small_benchmark["render"], out, scoring=GENERIC_SCORING, progress=False)  # fmt: skip
    ds = xr.open_zarr(out)
    store = HiddenStore(out)
    assert list(ds.coords["item"].values) == store.item_ids
    assert list(ds.coords["level"].values) == ["blur/0", "blur/1"]
    assert list(ds.coords["layer"].values) == [0, 1, 2]
    assert ds.last_token.dims == ("item", "level", "layer", "hidden")
    item = store.item_ids[3]
    picked = ds.last_token.sel(item=item, level="blur/1", layer=2).values
    np.testing.assert_array_equal(picked, store.group["last_token"][3, 1, 2, :])
