"""Items with several images (MMMU-style): staged in order, rendered per image, sent to both model families."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import stage_entry

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ExtractConfig, ModelConfig, PredictConfig, PromptConfig, RenderConfig
from blindspot.images import encode_png
from blindspot.models.inference import Request, encode_batch
from blindspot.models.loading import load_model
from blindspot.models.prompts import render_prompt
from blindspot.stages.extract import extract_benchmark
from blindspot.stages.predict import predict_benchmark
from blindspot.stages.render.run import render_benchmark
from blindspot.store.hidden import HiddenStore

FAMILIES = ("qwen2_5_vl", "llava_next")


def picture(rng: np.random.Generator, height: int, width: int) -> bytes:
    return encode_png(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four items: two with two images of different sizes, two with one (image_2 empty)."""
    root = tmp_path_factory.mktemp("multi")
    rng = np.random.default_rng(3)
    rows = []
    for i in range(4):
        second = {"bytes": picture(rng, 84, 56), "path": None} if i < 2 else None
        rows.append(
            {
                "id": f"m{i}",
                "question": f"Which picture is brighter? ({i})",
                "options": ["the first", "the second"],
                "answer": "A",
                "image_1": {"bytes": picture(rng, 56, 84), "path": None},
                "image_2": second,
            }
        )
    (root / "src").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "src" / "multi.parquet")
    entry = {
        "adapter": "generic",
        "path": str(root / "src" / "multi.parquet"),
        "answer_type": "multiple_choice",
        "columns": {"id": "id", "options": "options", "image": ["image_1", "image_2"]},
    }
    stage_entry("multi", entry, root / "staged")
    render = RenderConfig.model_validate(
        {
            "resize": {"longest_side": 84},
            "blur": {"kernels": [1, 25]},
            "pixelate": {"enabled": False},
            "blank": {"enabled": False},
            "noise": {"enabled": False},
        }
    )
    render_benchmark(root / "staged" / "images.parquet", render, 0, root / "multi.zarr", workers=1, progress=False)
    return {"items": root / "staged" / "items.parquet", "render": root / "multi.zarr", "root": root}


def test_images_are_staged_in_order(multi: dict[str, Path]) -> None:
    items = pl.read_parquet(multi["items"])
    assert items["image_keys"].list.len().to_list() == [2, 2, 1, 1]
    assert items["widths"].to_list()[0] == [84, 56] and items["heights"].to_list()[0] == [56, 84]
    assert items["widths"].to_list()[2] == [84]


@pytest.mark.parametrize("family", FAMILIES)
def test_an_items_images_reach_the_model_in_order(tiny_models, family: str) -> None:
    """Both images become image tokens (as many as each alone), and their order matters to the model."""
    loaded = load_model(ModelConfig(adapter=family, path=str(tiny_models[family])))
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 256, (56, 84, 3), np.uint8), rng.integers(0, 256, (84, 56, 3), np.uint8)

    def run(images: tuple[np.ndarray, ...]) -> tuple[int, torch.Tensor]:
        request = Request(render_prompt(loaded.processor, "Which is brighter?", len(images)), images, None)
        inputs = encode_batch(loaded, [request])
        with torch.inference_mode():
            logits = loaded.model(**inputs).logits[0, -1]
        return int(loaded.family.image_positions(loaded.model, inputs["input_ids"]).sum()), logits

    n_first, _ = run((first,))
    n_second, _ = run((second,))
    n_both, forward = run((first, second))
    _, backward = run((second, first))
    assert n_both == n_first + n_second
    assert not torch.allclose(forward, backward)


@pytest.mark.parametrize("family", FAMILIES)
def test_predict_and_extract_on_several_images(
    tiny_models, multi: dict[str, Path], tmp_path: Path, family: str
) -> None:
    """Batches mixing one- and two-image items give the same answers as items one by one; extract counts every
    image's tokens."""
    tables = []
    for batch_size in (1, 4):
        model = ModelConfig(adapter=family, path=str(tiny_models[family]), batch_size=batch_size, max_new_tokens=3)
        out = tmp_path / f"bs{batch_size}.parquet"
        predict_benchmark(
            "m",
            "multi",
            model,
            PredictConfig(),
            PromptConfig(),
            multi["items"],
            multi["render"],
            out,
            scoring=GENERIC_SCORING,
            progress=False,
        )
        tables.append(pl.read_parquet(out))
    one, four = tables
    assert one.height == 4 * 3  # blur/0, blur/1, none
    assert one["parsed"].to_list() == four["parsed"].to_list()
    a, b = one["option_logprobs"].explode().to_numpy(), four["option_logprobs"].explode().to_numpy()
    assert abs(a - b).max() < 1e-5

    model = ModelConfig(adapter=family, path=str(tiny_models[family]), batch_size=4)
    out = tmp_path / "h.zarr"
    extract = ExtractConfig(full_items=4, max_tokens=400)
    extract_benchmark(
        "m",
        "multi",
        model,
        extract,
        PromptConfig(),
        multi["items"],
        multi["render"],
        out,
        scoring=GENERIC_SCORING,
        progress=False,
    )
    store = HiddenStore(out)
    items = pl.read_parquet(multi["items"])
    assert store.groups[0] == "+".join(items["image_keys"][0])
    image_tokens = [int((store.tokens(i, "blur/0")[1] == 2).sum()) for i in range(4)]
    assert image_tokens[0] > image_tokens[2] and image_tokens[1] > image_tokens[3]
    assert np.isfinite(store.read("image_mean")).all()
