"""Rendering: blur correctness against OpenCV, level-0 identity, equal dimensions, store layout, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from conftest import generic_entry, stage_entry

from blindspot.config import RenderConfig, ResizeConfig
from blindspot.contracts.conditions import Condition
from blindspot.fixtures import write_shapes_benchmark
from blindspot.images import decode_rgb
from blindspot.stages.render.families import (
    blur_parameters,
    conditions,
    opencv_default_sigma,
    render_all,
    render_condition,
)
from blindspot.stages.render.resize import resize_to_working, working_size
from blindspot.stages.render.run import render_benchmark
from blindspot.store.arrays import StoreDamageError
from blindspot.store.render import RenderStore

KERNELS = [1, 9, 17, 25, 35, 43, 51, 61]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("render")
    path = write_shapes_benchmark(root / "src", n_items=6, seed=4, bad_rows=False)
    stage_entry("b", generic_entry(path), root / "staged")
    return root / "staged" / "images.parquet"


@pytest.fixture(scope="module")
def store(staged: Path) -> RenderStore:
    out = staged.parent.parent / "b.zarr"
    render_benchmark(staged, RenderConfig(), seed=7, out=out, workers=2, progress=False)
    return RenderStore(out)


def source_images(staged: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(staged)
    return {k: decode_rgb(d) for k, d in zip(table["image_sha256"].to_pylist(), table["data"].to_pylist(), strict=True)}


def test_working_size_rounds_to_the_patch_grid() -> None:
    config = ResizeConfig(longest_side=448, multiple_of=28)
    assert working_size(1000, 500, config) == (448, 224)
    assert working_size(300, 200, config) == (308, 196)  # no upscaling: only snapped to multiples of 28
    assert working_size(10, 10, config) == (28, 28)
    assert working_size(300, 200, ResizeConfig(longest_side=448, multiple_of=28, upscale=True)) == (448, 308)


def test_opencv_default_sigma_formula() -> None:
    assert opencv_default_sigma(61) == pytest.approx(0.15 * 61 + 0.35) == pytest.approx(9.5)
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    for k in KERNELS[1:]:  # for the ladder's kernels, sigma=0 blurs exactly as the documented sigma does
        np.testing.assert_array_equal(
            cv2.GaussianBlur(image, (k, k), 0), cv2.GaussianBlur(image, (k, k), opencv_default_sigma(k))
        )


def float_blur(image: np.ndarray, k: int) -> np.ndarray:
    """The documented recipe: OpenCV's Gaussian with its default sigma, in float32, rounded once."""
    return np.clip(np.rint(cv2.GaussianBlur(image.astype(np.float32), (k, k), 0)), 0, 255).astype(np.uint8)


def test_blur_levels_match_cv2_gaussianblur_bit_for_bit(store: RenderStore, staged: Path) -> None:
    for key, source in source_images(staged).items():
        clean = resize_to_working(source, RenderConfig().resize)
        levels = store.levels(key)
        assert levels.shape[1:] == clean.shape  # every condition has the clean image's exact dimensions
        np.testing.assert_array_equal(levels[store.condition_index("blur", 0)], clean)  # level 0 is the clean image
        for level, k in enumerate(KERNELS):
            expected = clean if k == 1 else float_blur(clean, k)
            np.testing.assert_array_equal(levels[store.condition_index("blur", level)], expected)


def test_float_blur_agrees_with_an_independent_gaussian() -> None:
    """scipy in float64 with the same weights and mirrored border (OpenCV's reflect-101): a Gaussian of the
    documented sigma and radius, except at k=9, where OpenCV's default (sigma 0) is its fixed 9-tap table
    (1/256 x [4, 13, 30, 51, 60, 51, 30, 13, 4], up to 0.6 grey levels from the Gaussian of sigma 1.7). The
    rendered levels differ by at most one grey level (rounding at .5), on almost no pixels."""
    from scipy.ndimage import convolve1d, gaussian_filter

    image = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    config = RenderConfig()
    for k in KERNELS[1:]:
        dst = np.empty_like(image)
        render_condition(image, Condition("blur", 1, float(k)), config, 0, "0" * 16, dst)
        sigma = opencv_default_sigma(k)
        if k == 9:
            table = np.array([4, 13, 30, 51, 60, 51, 30, 13, 4]) / 256
            rows = convolve1d(image.astype(np.float64), table, axis=0, mode="mirror")
            reference = convolve1d(rows, table, axis=1, mode="mirror")
        else:
            reference = gaussian_filter(
                image.astype(np.float64), sigma=(sigma, sigma, 0), mode="mirror", truncate=(k // 2) / sigma
            )
        difference = np.abs(dst.astype(int) - np.rint(reference).astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01, (k, difference.max())


def test_uint8_precision_is_opencvs_8_bit_path() -> None:
    from blindspot.config import BlurFamily

    image = np.random.default_rng(2).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    config = RenderConfig(blur=BlurFamily(precision="uint8"))
    for k in KERNELS[1:]:
        dst = np.empty_like(image)
        render_condition(image, Condition("blur", 1, float(k)), config, 0, "0" * 16, dst)
        np.testing.assert_array_equal(dst, cv2.GaussianBlur(image, (k, k), 0))


def test_store_layout_and_metadata(store: RenderStore) -> None:
    pixels = store.group["pixels"]
    n_conditions = len(KERNELS) + 4 + 2
    assert pixels.metadata.dimension_names == ("image", "condition", "y", "x", "channel")
    assert pixels.chunks == (1, n_conditions, *pixels.shape[2:])  # one image's levels = one chunk
    assert [c.key for c in store.conditions][:8] == [f"blur/{i}" for i in range(8)]
    assert [c.key for c in store.conditions][8:] == [
        "pixelate/1",
        "pixelate/2",
        "pixelate/3",
        "pixelate/4",
        "blank/1",
        "noise/1",
    ]
    assert store.group["sigma"].metadata.dimension_names == ("image", "condition")
    sigmas = store.group["sigma"][:]
    np.testing.assert_allclose(sigmas[:, 1:8], [[0.15 * k + 0.35 for k in KERNELS[1:]]] * sigmas.shape[0], rtol=1e-6)
    provenance = store.attrs["provenance"]
    assert provenance["stage"] == "render" and len(provenance["config_hash"]) == 16
    assert provenance["config"]["seed"] == 7


def test_padding_is_zero_and_sizes_recorded(store: RenderStore) -> None:
    pixels = store.group["pixels"]
    for index in range(len(store.image_keys)):
        h, w = int(store.heights[index]), int(store.widths[index])
        chunk = pixels[index]
        assert not chunk[:, h:].any() and not chunk[:, :, w:].any()


def test_other_families(store: RenderStore, staged: Path) -> None:
    for key, source in source_images(staged).items():
        clean = resize_to_working(source, RenderConfig().resize)
        levels = store.levels(key)
        blank = levels[store.condition_index("blank", 1)]
        assert (blank == np.rint(clean.reshape(-1, 3).mean(0)).astype(np.uint8)).all()
        noise = levels[store.condition_index("noise", 1)]
        assert abs(noise.mean() - 127.5) < 3 and noise.std() > 70  # uniform noise, unrelated to the image
    keys = store.image_keys
    assert not np.array_equal(store.image(keys[0], "noise", 1)[:28, :28], store.image(keys[1], "noise", 1)[:28, :28])


@pytest.mark.parametrize(("height", "width"), [(308, 196), (112, 112), (84, 252)])
def test_pixelate_is_constant_on_a_grid_of_blocks(height: int, width: int) -> None:
    """On a noise image neighbouring cells differ, so the rows and columns of the pixelated image have
    round(side / block) runs, for any working size (not only multiples of the block); cell colours are the
    area averages, so the image's mean colour is kept."""
    clean = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    config = RenderConfig.model_validate({"pixelate": {"blocks": [8, 16]}})
    for block in (8, 16):
        pix = np.empty_like(clean)
        render_condition(clean, Condition("pixelate", 1, float(block)), config, 0, "0" * 16, pix)
        runs_down = 1 + (np.diff(pix.astype(int), axis=0) != 0).any(axis=2).sum(axis=0)
        runs_across = 1 + (np.diff(pix.astype(int), axis=1) != 0).any(axis=2).sum(axis=1)
        # (two neighbouring cells can average to the same colour by chance: at most, and typically exactly)
        assert runs_down.max() == np.median(runs_down) == round(height / block)
        assert runs_across.max() == np.median(runs_across) == round(width / block)
        assert abs(pix.mean(axis=(0, 1)) - clean.mean(axis=(0, 1))).max() < 4


def test_noise_and_render_are_deterministic(staged: Path, tmp_path: Path) -> None:
    for workers, name in ((1, "a.zarr"), (2, "b.zarr")):
        render_benchmark(staged, RenderConfig(), seed=7, out=tmp_path / name, workers=workers, progress=False)
    a, b = RenderStore(tmp_path / "a.zarr"), RenderStore(tmp_path / "b.zarr")
    for key in a.image_keys:
        np.testing.assert_array_equal(a.levels(key), b.levels(key))


def test_relative_sigma_scales_with_the_shorter_side() -> None:
    config = RenderConfig.model_validate({"blur": {"sigma_mode": "relative", "reference_side": 448}}).blur
    assert blur_parameters(61, 448, config) == (59, pytest.approx(9.5))  # +-3 sigma: radius ceil(28.5) = 29
    ksize, sigma = blur_parameters(61, 224, config)
    assert sigma == pytest.approx(4.75) and ksize == 2 * 15 + 1
    assert blur_parameters(1, 224, config) == (1, 0.0)
    image = np.random.default_rng(0).integers(0, 255, (224, 336, 3), dtype=np.uint8)
    conds = [Condition("blur", 0, 1.0), Condition("blur", 1, 61.0)]
    stack, sigmas = render_all(
        image, conds, RenderConfig.model_validate({"blur": {"sigma_mode": "relative"}}), 0, "ab" * 32
    )
    expected = np.clip(np.rint(cv2.GaussianBlur(image.astype(np.float32), (31, 31), 4.75)), 0, 255)
    np.testing.assert_array_equal(stack[1], expected.astype(np.uint8))
    assert sigmas.tolist() == [0.0, pytest.approx(4.75)]


@pytest.mark.parametrize(
    "compression",
    [
        {"cname": "lz4", "clevel": 1, "shuffle": "bitshuffle"},
        {"cname": "zstd", "clevel": 3, "shuffle": "shuffle"},
        {"cname": "none"},
    ],
)
def test_directly_written_chunks_read_back_through_zarr(staged: Path, tmp_path: Path, compression: dict) -> None:
    """PixelChunks bypasses zarr's write path; zarr must read the chunks back bit for bit."""
    config = RenderConfig.model_validate({"compression": compression})
    render_benchmark(staged, config, seed=0, out=tmp_path / "s.zarr", workers=1, progress=False)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    meta = json.loads((tmp_path / "s.zarr" / "pixels" / "zarr.json").read_text())
    codecs = [c["name"] for c in meta["codecs"]]
    assert codecs == (["bytes", "crc32c"] if compression["cname"] == "none" else ["bytes", "blosc", "crc32c"])
    store = RenderStore(tmp_path / "s.zarr")
    for index, (key, source) in enumerate(source_images(staged).items()):
        clean = resize_to_working(source, config.resize)
        expected, _ = render_all(clean, conditions(config), config, 0, key)
        np.testing.assert_array_equal(group["pixels"][index, :, : clean.shape[0], : clean.shape[1]], expected)
        assert store.image_keys[index] == key


def test_a_failed_render_leaves_no_store(staged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import blindspot.stages.render.run as run

    calls = {"n": 0}
    real = run.render_one

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "render_one", failing)
    with pytest.raises(RuntimeError, match="killed"):
        render_benchmark(staged, RenderConfig(), seed=0, out=tmp_path / "x.zarr", workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the store nor its temporary sibling


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreDamageError, match=r"no render output at .*none\.zarr'; run the render step first"):
        RenderStore(tmp_path / "none.zarr")
