"""Render-stage throughput against a bare ``cv2.GaussianBlur`` loop over the same images and levels.

    python bench/render.py [--images 48] [--repeats 3]

The render stage decodes each staged image, resizes it to the working size, renders the blur ladder, compresses
and writes one Zarr chunk per image, and renames the store into place. The baseline only blurs the already
decoded, already resized images (nothing is written). Both are measured in this run, on this machine; the
printed ratio is stage / baseline throughput (target: >= 0.7, i.e. at most ~30% Zarr and I/O overhead).
A second line reports the stage with every family enabled (blur + pixelate + blank + noise) for reference.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import _cli as cli  # bench/_cli.py
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from blindspot.benchmarks.generic import GenericBenchmark
from blindspot.config import RenderConfig
from blindspot.fixtures import write_shapes_benchmark
from blindspot.images import decode_rgb
from blindspot.stages.render.resize import resize_to_working
from blindspot.stages.render.run import render_benchmark
from blindspot.stages.staging import stage_benchmark, staged_paths


def natural_like_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour fields plus texture: compresses like a photo, unlike flat shapes."""
    base = rng.integers(0, 256, size=(max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    image = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    texture = rng.normal(0, 12, size=(height, width, 3))
    return np.clip(image + texture, 0, 255).astype(np.uint8)


def build_benchmark(root: Path, n_images: int, seed: int) -> Path:
    """Stage ``n_images`` photo-like JPEGs (as COCO-based benchmarks ship) of mixed sizes up to 1024 px, so the
    resize step does real work."""
    data_dir = root / "data"
    write_shapes_benchmark(data_dir, n_items=n_images, seed=seed, bad_rows=False)
    # Replace the flat shapes with photo-like content of mixed sizes.
    table = pq.read_table(data_dir / "items.parquet").to_pylist()
    rng = np.random.default_rng(seed)
    for row in table:
        h, w = (int(v) for v in rng.integers(320, 1024, size=2))
        _, jpeg = cv2.imencode(".jpg", natural_like_image(rng, h, w), [cv2.IMWRITE_JPEG_QUALITY, 90])
        row["image"] = {"bytes": jpeg.tobytes(), "path": None}

    pq.write_table(pa.Table.from_pylist(table), data_dir / "items.parquet")
    config = GenericBenchmark(
        path=str(data_dir / "items.parquet"),
        answer_type="multiple_choice",
        columns={"id": "question_id", "options": "options"},
    )
    stage_benchmark("bench", config, staged_paths(root / "staged"))
    return root / "staged" / "images.parquet"


def time_stage(images: Path, config: RenderConfig, out: Path, workers: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render_benchmark(images, config, 0, out, workers=workers, progress=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_bare_loop(images: Path, config: RenderConfig, repeats: int) -> float:
    decoded = [
        resize_to_working(decode_rgb(data), config.resize)
        for data in pq.read_table(images, columns=["data"]).column(0).to_pylist()
    ]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for image in decoded:
            for k in config.blur.kernels:  # the render stage's float recipe (precision: float)
                np.rint(cv2.GaussianBlur(image.astype(np.float32), (k, k), 0)).clip(0, 255).astype(np.uint8)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cname", default=None, help="override render.compression.cname")
    parser.add_argument("--shuffle", default=None, help="override render.compression.shuffle")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.repeats, args.workers = 3, 1, 1

    compression = RenderConfig().compression.model_dump()
    compression.update({k: v for k, v in (("cname", args.cname), ("shuffle", args.shuffle)) if v})
    blur_only = RenderConfig.model_validate(
        {
            "pixelate": {"enabled": False},
            "blank": {"enabled": False},
            "noise": {"enabled": False},
            "compression": compression,
        }
    )
    every_family = RenderConfig.model_validate({"compression": compression})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = build_benchmark(root, args.images, seed=0)
        n = args.images
        levels = len(blur_only.blur.kernels)
        bare = time_bare_loop(images, blur_only, args.repeats)
        stage = time_stage(images, blur_only, root / "blur.zarr", args.workers, args.repeats)
        full = time_stage(images, every_family, root / "full.zarr", args.workers, args.repeats)

    print(
        f"render benchmark: {n} images (320-1024 px, resized to longest side 448), {levels} blur levels, "
        f"{args.workers} workers, cv2 threads {cv2.getNumThreads()}, median of {args.repeats}, "
        f"compression {compression}"
    )
    print(f"  bare cv2.GaussianBlur loop : {n / bare:8.2f} images/s")
    print(f"  render stage (blur ladder) : {n / stage:8.2f} images/s   (decode + resize + blur + zarr write)")
    print(f"  ratio stage / bare         : {bare / stage:8.2f}   (target >= 0.70)")
    print(
        f"  render stage (all families): {n / full:8.2f} images/s   ({len(every_family.blur.kernels)} blur + "
        f"{len(every_family.pixelate.blocks)} pixelate + blank + noise)"
    )


if __name__ == "__main__":
    main()
