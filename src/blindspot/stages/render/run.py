"""The render step: staged images -> every obfuscation family and level in one Zarr store, written atomically.

Images are independent and each ends in its own chunk, so worker threads render and write them in parallel:
OpenCV and Blosc release the GIL, and chunks are written without zarr's GIL-bound write path
(:class:`~blindspot.store.render.PixelChunks`). A process pool measured the same steady-state throughput on
2 cores, plus a second of start-up, so threads it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from blindspot.config import RenderConfig
from blindspot.contracts.conditions import Condition
from blindspot.images import decode_rgb
from blindspot.progress import Bar
from blindspot.stages.render.families import conditions, render_all
from blindspot.stages.render.resize import resize_to_working, working_size
from blindspot.stages.slices import RenderSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.store.arrays import consolidate
from blindspot.store.atomic import atomic_output
from blindspot.store.provenance import provenance
from blindspot.store.render import PixelChunks, create_store, write_sigmas
from blindspot.store.tables import iter_rows, read_table


@dataclass(frozen=True)
class RenderSummary:
    images: int
    conditions: int


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs besides the image itself."""

    chunks: PixelChunks
    conds: tuple[Condition, ...]
    config: RenderConfig
    seed: int
    sizes: tuple[tuple[int, int], ...]


def _iter_images(images_parquet: Path) -> Iterator[tuple[str, bytes]]:
    """The staged images, streamed with their page checksums verified (a flipped byte is one line, never a
    silently wrong picture)."""
    for row in iter_rows(images_parquet, ["image_sha256", "data"], batch_size=16):
        yield row["image_sha256"], row["data"]


def render_one(
    data: bytes, key: str, conds: list[Condition], config: RenderConfig, seed: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode, resize to the working size, and render every condition of one source image (into ``out``)."""
    clean = resize_to_working(decode_rgb(data), config.resize)
    return render_all(clean, list(conds), config, seed, key, out)


_buffers = threading.local()


def _chunk_buffer(chunks: PixelChunks, height: int, width: int) -> np.ndarray:
    """This thread's reusable chunk buffer, with the padding outside ``height`` x ``width`` zeroed."""
    block = getattr(_buffers, "block", None)
    if block is None or block.shape != chunks.block_shape:
        block = _buffers.block = chunks.new_block()
    else:
        block[:, height:] = 0
        block[:, :height, width:] = 0
    return block


def _render_to_chunk(job: _Job, index: int, key: str, data: bytes) -> tuple[int, np.ndarray]:
    block = _chunk_buffer(job.chunks, *job.sizes[index])
    stack, sigmas = render_one(data, key, list(job.conds), job.config, job.seed, out=block)
    if stack.shape[1:3] != job.sizes[index]:
        raise AssertionError(f"image {key[:12]}: rendered {stack.shape[1:3]}, expected {job.sizes[index]}")
    job.chunks.write(index, block)
    return index, sigmas


@contextmanager
def _opencv_threads(n: int) -> Iterator[None]:
    """Parallelism comes from our worker threads; OpenCV's own threads on top would oversubscribe the cores."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


class _InlinePool:
    """The pool interface, run in this process (workers=1: easy to debug, no start-up cost)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self) -> _InlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def render_benchmark(
    images_parquet: str | Path,
    config: RenderConfig,
    seed: int,
    out: str | Path,
    *,
    workers: int = 2,
    progress: bool = True,
) -> RenderSummary:
    images_parquet = Path(images_parquet)
    meta = read_table(images_parquet, columns=["image_sha256", "width", "height"])
    keys = meta.column("image_sha256").to_pylist()
    sizes = [
        working_size(h, w, config.resize)
        for w, h in zip(meta.column("width").to_pylist(), meta.column("height").to_pylist(), strict=True)
    ]
    conds = conditions(config)
    attrs = {
        "provenance": provenance("render", {"render": config, "seed": seed}),
        "conditions": [c.key for c in conds],
        "working_size": config.resize.model_dump(),
    }
    sigmas = np.zeros((len(keys), len(conds)), dtype=np.float32)
    pool = _InlinePool() if workers <= 1 else ThreadPoolExecutor(workers)
    with _opencv_threads(1 if workers > 1 else cv2.getNumThreads()), pool, atomic_output(out) as tmp:
        chunks = create_store(tmp, keys, sizes, conds, config.compression, attrs)
        job = _Job(chunks=chunks, conds=tuple(conds), config=config, seed=seed, sizes=tuple(sizes))
        bar = Bar(total=len(keys), desc=f"render {Path(out).stem}", unit="img", disable=not progress)
        pending: list[Future] = []

        def collect(future: Future) -> None:
            index, row = future.result()
            sigmas[index] = row
            bar.update()

        # Bounded in-flight work: memory stays flat however many images there are.
        for index, (key, data) in enumerate(_iter_images(images_parquet)):
            pending.append(pool.submit(_render_to_chunk, job, index, key, data))
            while len(pending) >= 4 * max(1, workers):
                collect(pending.pop(0))
        for future in pending:
            collect(future)
        bar.close()
        write_sigmas(tmp, sigmas)
        consolidate(tmp)
    return RenderSummary(images=len(keys), conditions=len(conds))


def run(config: RenderSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    summary = render_benchmark(
        inputs["images"], config.render, config.seed, outputs["store"], workers=job.threads, progress=job.progress
    )
    return f"rendered {job.bench}: {summary.images} images x {summary.conditions} conditions"
