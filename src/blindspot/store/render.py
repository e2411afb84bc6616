"""The render store: ``results/render/{bench}.zarr`` (Zarr v3).

Layout (dimension names in brackets)::

    pixels          uint8   [image, condition, y, x, channel]  chunk = one image, every condition
    height, width   int32   [image]       working size; pixels beyond it are padding (0)
    image_sha256    string  [image]       key into the staged items' ``image_sha256``
    sigma           float32 [image, condition]  Gaussian sigma applied (0 where not a blur)
    condition_family string [condition], condition_level int32 [condition], condition_param float32 [condition]
    image           string  [image]       coordinate: the image key (equal to image_sha256)
    condition       string  [condition]   coordinate: the condition key, e.g. blur/3

Reading all levels of one image is a single chunk read. Group attrs hold the provenance and the conditions.
Every array names its dimensions and each dimension but the pixel axes has a coordinate array, so
``xarray.open_zarr(path)`` opens the store as a labelled Dataset (``ds.pixels.sel(condition="blur/3")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numcodecs import CRC32C, Blosc
from zarr.codecs import BloscCodec

from blindspot.config import CompressionConfig
from blindspot.contracts.conditions import Condition
from blindspot.store.arrays import create_checked_array, damaged, open_finished, write_array

PIXEL_DIMS = ("image", "condition", "y", "x", "channel")
_SHUFFLE = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
_DEFAULT_KEY_ENCODING = {"name": "default", "configuration": {"separator": "/"}}


@dataclass(frozen=True)
class PixelChunks:
    """Writes whole pixel chunks of one store; small and picklable, so worker processes can hold one.

    Each chunk is encoded with the same Blosc codec the ``pixels`` array declares and written under its Zarr v3
    chunk key (``pixels/c/{image}/0/0/0/0``). Zarr's own write path holds the GIL for most of its work and
    serialised the render workers; ``tests/test_render.py`` checks that zarr reads these chunks back bit for bit.
    """

    root: str
    block_shape: tuple[int, int, int, int]
    compression: CompressionConfig

    def new_block(self) -> np.ndarray:
        """A zeroed chunk buffer: render into its top-left corner, then :meth:`write` it."""
        return np.zeros(self.block_shape, dtype=np.uint8)

    def write(self, index: int, block: np.ndarray) -> None:
        if block.shape != self.block_shape or block.dtype != np.uint8 or not block.flags.c_contiguous:
            raise ValueError(f"image {index}: block {block.shape} {block.dtype} does not fit {self.block_shape}")
        c = self.compression
        if c.cname == "none":
            payload = block.tobytes()
        else:
            payload = Blosc(cname=c.cname, clevel=c.clevel, shuffle=_SHUFFLE[c.shuffle]).encode(block)
        payload = CRC32C().encode(payload)  # the array's checksum codec: crc32c appended, little-endian
        chunk = Path(self.root) / "pixels" / "c" / str(index) / "0" / "0" / "0" / "0"
        chunk.parent.mkdir(parents=True, exist_ok=True)
        chunk.write_bytes(payload)


def create_store(
    path: Path,
    image_keys: list[str],
    sizes: list[tuple[int, int]],
    conds: list[Condition],
    compression: CompressionConfig,
    attrs: dict[str, Any],
) -> PixelChunks:
    """Create the store's arrays and metadata; returns the writer for its pixel chunks."""
    n_images, n_conds = len(image_keys), len(conds)
    max_h = max(h for h, _ in sizes)
    max_w = max(w for _, w in sizes)
    group = zarr.open_group(store=str(path), mode="w", zarr_format=3)
    pixels = create_checked_array(
        group,
        "pixels",
        None
        if compression.cname == "none"
        else BloscCodec(cname=compression.cname, clevel=compression.clevel, shuffle=compression.shuffle),
        shape=(n_images, n_conds, max_h, max_w, 3),
        chunks=(1, n_conds, max_h, max_w, 3),
        dtype="uint8",
        fill_value=0,
        dimension_names=PIXEL_DIMS,
    )
    if pixels.metadata.chunk_key_encoding.to_dict() != _DEFAULT_KEY_ENCODING:
        raise RuntimeError("zarr changed its default chunk key encoding; update PixelChunks.write")

    write_array(group, "height", np.array([h for h, _ in sizes], dtype=np.int32), ("image",))
    write_array(group, "width", np.array([w for _, w in sizes], dtype=np.int32), ("image",))
    write_array(group, "image_sha256", np.array(image_keys, dtype=str), ("image",))
    write_array(group, "condition_family", np.array([c.family for c in conds], dtype=str), ("condition",))
    write_array(group, "condition_level", np.array([c.level for c in conds], dtype=np.int32), ("condition",))
    write_array(group, "condition_param", np.array([c.param for c in conds], dtype=np.float32), ("condition",))
    # Index coordinates (an array named after its dimension): xarray.open_zarr labels the dimensions with them.
    write_array(group, "image", np.array(image_keys, dtype=str), ("image",))
    write_array(group, "condition", np.array([c.key for c in conds], dtype=str), ("condition",))
    group.attrs.update(attrs)
    return PixelChunks(root=str(path), block_shape=(n_conds, max_h, max_w, 3), compression=compression)


def write_sigmas(path: Path, sigmas: np.ndarray) -> None:
    """The Gaussian sigma of every (image, condition), written once after all chunks."""
    group = zarr.open_group(store=str(path), mode="r+")
    array = create_checked_array(
        group, "sigma", shape=sigmas.shape, dtype="float32", dimension_names=("image", "condition")
    )
    array[...] = sigmas


REQUIRED = ("pixels", "image_sha256", "height", "width", "condition_family", "condition_level", "condition_param")
"""The arrays every finished render store has (what its readers need)."""


class RenderStore:
    """Read access to a finished render store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.group = open_finished(self.path, "render", REQUIRED)
        self.image_keys: list[str] = [str(k) for k in self.group["image_sha256"][:]]
        self._index = {key: i for i, key in enumerate(self.image_keys)}
        self.heights = self.group["height"][:]
        self.widths = self.group["width"][:]
        self.conditions = [
            Condition(str(f), int(lv), float(p))
            for f, lv, p in zip(
                self.group["condition_family"][:],
                self.group["condition_level"][:],
                self.group["condition_param"][:],
                strict=True,
            )
        ]

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def index_of(self, image_key: str) -> int:
        try:
            return self._index[image_key]
        except KeyError:
            raise KeyError(f"image {image_key[:12]}... is not in render store '{self.path}'") from None

    def condition_index(self, family: str, level: int) -> int:
        for index, condition in enumerate(self.conditions):
            if condition.family == family and condition.level == level:
                return index
        raise KeyError(f"condition {family}/{level} is not in render store '{self.path}'")

    def levels(self, image_key: str) -> np.ndarray:
        """Every condition of one image, ``(n_conditions, height, width, 3)`` uint8, from one chunk read."""
        index = self.index_of(image_key)
        h, w = int(self.heights[index]), int(self.widths[index])
        try:
            return self.group["pixels"][index, :, :h, :w, :]
        except (ValueError, RuntimeError) as error:  # a checksum mismatch, an undecodable chunk
            raise damaged(self.path, "render", error) from None

    def image(self, image_key: str, family: str, level: int) -> np.ndarray:
        return self.levels(image_key)[self.condition_index(family, level)]
