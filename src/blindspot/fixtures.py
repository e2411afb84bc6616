"""Small fixture benchmarks in the generic adapter's formats: coloured shapes on plain backgrounds.

They exist so that the workflow runs end to end offline (``make demo``) and so the tests can exercise every input
path of the generic adapter: parquet or JSONL; images as HF structs, raw bytes, base64 strings or file paths;
and deliberately bad rows (corrupt image, missing answer, missing question) that must land in the rejects table.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from blindspot.images import encode_png

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 210, 40),
}
SHAPES = ("circle", "square", "triangle")

Kind = Literal["color_mc", "shape_yes_no"]
ImageMode = Literal["struct", "bytes", "base64", "path"]


def draw_scene(rng: np.random.Generator, colour: str, shape: str) -> np.ndarray:
    """An RGB image of random size and aspect ratio with one coloured shape on a muted background."""
    height, width = (int(v) for v in rng.integers(96, 720, size=2))
    background = rng.integers(90, 170, size=3)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = background
    cy, cx = int(height * rng.uniform(0.35, 0.65)), int(width * rng.uniform(0.35, 0.65))
    r = int(min(height, width) * rng.uniform(0.18, 0.3))
    rgb = COLOURS[colour]
    if shape == "circle":
        cv2.circle(image, (cx, cy), r, rgb, thickness=-1)
    elif shape == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), rgb, thickness=-1)
    else:
        points = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
        cv2.fillPoly(image, [points], rgb)
    return image


def _image_value(png: bytes, mode: ImageMode, image_dir: Path, name: str) -> Any:
    if mode == "struct":
        return {"bytes": png, "path": f"{name}.png"}
    if mode == "bytes":
        return png
    if mode == "base64":
        return base64.b64encode(png).decode()
    (image_dir / f"{name}.png").write_bytes(png)
    return f"{name}.png"


def shapes_rows(n_items: int, seed: int, kind: Kind) -> list[dict[str, Any]]:
    """Rows with a rendered PNG under ``png``. ``shape_yes_no`` asks two questions per image (one yes, one no)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    colours = list(COLOURS)
    image_index = 0
    while len(rows) < n_items:
        colour = colours[int(rng.integers(len(colours)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        png = encode_png(draw_scene(rng, colour, shape))
        image_name = f"img{image_index:05d}"
        image_index += 1
        if kind == "color_mc":
            options = list(colours)
            rng.shuffle(options)
            rows.append(
                {
                    "question_id": f"q{len(rows):05d}",
                    "question": f"What colour is the {shape}?",
                    "options": options,
                    "answer": colour,
                    "category": "colour",
                    "png": png,
                    "image_name": image_name,
                }
            )
        else:
            other = SHAPES[(SHAPES.index(shape) + 1 + int(rng.integers(2))) % len(SHAPES)]
            for asked, answer in ((shape, "yes"), (other, "no")):
                rows.append(
                    {
                        "question_id": f"q{len(rows):05d}",
                        "question": f"Is there a {asked} in the image?",
                        "answer": answer,
                        "category": "shape",
                        "png": png,
                        "image_name": image_name,
                    }
                )
    return rows[:n_items]


def write_shapes_benchmark(
    out_dir: str | Path,
    *,
    n_items: int = 48,
    seed: int = 0,
    fmt: Literal["parquet", "jsonl"] = "parquet",
    image_mode: ImageMode = "struct",
    kind: Kind = "color_mc",
    bad_rows: bool = True,
) -> Path:
    """Write a fixture benchmark; returns the data file. With ``bad_rows`` three rows are appended that must be
    rejected: a corrupt image, a missing answer and a missing question."""
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rows = shapes_rows(n_items, seed, kind)
    records = []
    for row in rows:
        record = {k: v for k, v in row.items() if k not in {"png", "image_name"}}
        record["image"] = _image_value(row["png"], image_mode, image_dir, row["image_name"])
        records.append(record)
    if bad_rows and records:
        template = {k: v for k, v in records[0].items() if k != "image"}
        corrupt = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40  # a PNG header with nothing decodable after it
        bad_image = _image_value(corrupt, image_mode, image_dir, "corrupt")
        records.append({**template, "question_id": "bad_image", "image": bad_image})
        records.append({**template, "question_id": "no_answer", "answer": None, "image": records[1]["image"]})
        records.append({**template, "question_id": "no_question", "question": None, "image": records[2]["image"]})
    path = out_dir / f"items.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        with path.open("w") as handle:
            for record in records:
                if isinstance(record["image"], bytes):
                    raise ValueError("JSONL cannot hold raw bytes; use image_mode base64 or path")
                handle.write(json.dumps(record) + "\n")
    return path


def pixel_bomb_png(side: int) -> bytes:
    """A valid grey PNG of ``side`` x ``side`` zero pixels: a few MB on disk, ``side**2`` bytes decoded (the
    hostile-size fixture of the staging tests and the fault script)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + one byte per pixel
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
