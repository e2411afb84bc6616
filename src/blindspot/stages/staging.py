"""The stage step: adapter rows -> canonical ``items.parquet``, ``images.parquet`` and ``rejects.parquet``.

Every source row ends up in exactly one of items or rejects. Images are deduplicated by the sha256 of their
source bytes (POPE asks many questions about one image), so rendering works per unique image. An item may have
several images (MMMU); they keep their order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from blindspot.benchmarks import get_benchmark
from blindspot.benchmarks.gold import canonical_gold
from blindspot.benchmarks.registry import BenchmarkConfigBase
from blindspot.benchmarks.sources import guarded_row
from blindspot.contracts.items import RawItem, Reject, RejectedItem
from blindspot.contracts.tables import IMAGES_SCHEMA, ITEMS_SCHEMA, REJECTS_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.images import ImageError, check_bytes, decode_rgb, resolve_image_bytes, sha256_hex
from blindspot.stages.slices import StageSlice
from blindspot.stages.table import JobContext, Paths
from blindspot.store.atomic import atomic_output
from blindspot.store.provenance import provenance
from blindspot.store.tables import with_provenance, write_table

_IMAGE_ROW_GROUP = 32


class StageError(BlindspotError):
    """The benchmark as a whole cannot be staged."""


@dataclass(frozen=True)
class StageSummary:
    items: int
    rejects: int
    images: int
    reasons: dict[str, int]


def content_id(question: str, options: list[str] | None, image_keys: list[str]) -> str:
    """A stable id for sources without one: a hash of what the item asks about what."""
    payload = json.dumps([question, options, image_keys[0] if len(image_keys) == 1 else image_keys], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _metadata_json(metadata: dict[str, Any]) -> str:
    def default(value: Any) -> Any:
        return value.tolist() if hasattr(value, "tolist") else str(value)

    return json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=default)


class _ImageSink:
    """Streams unique images to parquet in row groups; remembers each image's size."""

    def __init__(self, path: Path, schema: pa.Schema, max_pixels: int, max_bytes: int) -> None:
        self._max_pixels = max_pixels
        self.max_bytes = max_bytes
        self._writer = pq.ParquetWriter(path, schema, compression="none", write_page_checksum=True)
        self._schema = schema
        self._pending: list[dict[str, Any]] = []
        self.sizes: dict[str, tuple[int, int]] = {}

    def add(self, data: bytes) -> tuple[str, int, int]:
        check_bytes(len(data), self.max_bytes)
        sha = sha256_hex(data)
        if sha not in self.sizes:
            height, width = decode_rgb(data, self._max_pixels).shape[:2]  # ImageError: corrupt, too large
            self.sizes[sha] = (width, height)
            self._pending.append({"image_sha256": sha, "data": data, "width": width, "height": height})
            if len(self._pending) >= _IMAGE_ROW_GROUP:
                self.flush()
        width, height = self.sizes[sha]
        return sha, width, height

    def flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_pylist(self._pending, schema=self._schema))
            self._pending = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


INTENDED_REASONS = frozenset({"filtered_out"})
"""Reject reasons that are the user's choice (a ``filter``), not a problem: they do not count towards the
``max_reject_share`` check."""


def _check_unique_id(raw: RawItem, first_seen: dict[str, int]) -> None:
    """A mapped id column must identify items: a repeat means the column is not an item id (MME's
    ``question_id`` is shared by the two questions of an image), and rejecting the repeats would silently drop
    part of the benchmark."""
    if raw.source_id is None:
        return
    if raw.source_id in first_seen:
        raise StageError(
            f"the id '{raw.source_id}' of row {raw.source_index} repeats row {first_seen[raw.source_id]}: the id "
            "column is not unique; map a unique column, a list of columns that together are (columns.id: "
            "[question_id, question]), or none (ids become content hashes)",
            key="benchmark.columns.id",
        )
    first_seen[raw.source_id] = raw.source_index


MAX_ID_CHARS = 1024
"""The longest source id staged (longer ones are rejects, not a failed table)."""


def _check_text(field: str, value: Any) -> None:
    """Text that Parquet can store: a lone surrogate (a broken UTF-16 pair, common in scraped JSON) would fail the
    whole items table when it is written, so its row is a reject instead."""
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise RejectedItem(
                    "bad_text", f"the {field} holds a character that is not valid Unicode at position {error.start}"
                ) from None


def _canonical_row(
    name: str, raw: RawItem, images: _ImageSink, image_root: Path | None, seen_ids: set[str]
) -> dict[str, Any]:
    question = raw.question
    for field, value in (("question", question), ("answer", raw.answer), *(("option", o) for o in raw.options or [])):
        if isinstance(value, bytes | bytearray | memoryview):
            raise RejectedItem("bad_text", f"the {field} is binary data ({len(value)} bytes), not text")
        if field != "answer" and isinstance(value, dict | list):
            raise RejectedItem("bad_text", f"the {field} is a {type(value).__name__}, not text")
        _check_text(field, value)
    if raw.source_id is not None:
        _check_text("id", raw.source_id)
        if len(raw.source_id) > MAX_ID_CHARS:
            raise RejectedItem("bad_id", f"the id is {len(raw.source_id)} characters long (at most {MAX_ID_CHARS})")
    if question is None or not str(question).strip():
        raise RejectedItem("missing_question", "missing question")
    answer, answers = canonical_gold(raw.answer, raw.answer_type, raw.options, raw.answer_format)
    if not raw.images or all(image is None for image in raw.images):
        raise RejectedItem("missing_image", "missing image")
    keys, widths, heights = [], [], []
    for position, image in enumerate(raw.images):
        try:
            key, width, height = images.add(resolve_image_bytes(image, image_root, images.max_bytes))
        except ImageError as error:
            reason = error.reason
            where = f"image {position + 1} of {len(raw.images)}: " if len(raw.images) > 1 else ""
            raise RejectedItem(reason, where + str(error)) from None
        keys.append(key)
        widths.append(width)
        heights.append(height)
    question = str(question).strip()
    item_id = raw.source_id if raw.source_id is not None else content_id(question, raw.options, keys)
    if item_id in seen_ids:
        raise RejectedItem("duplicate_id", f"item_id '{item_id}' (a content hash) appeared earlier")
    return {
        "benchmark": name,
        "item_id": item_id,
        "question": question,
        "options": raw.options,
        "answer": answer,
        "answers": answers,
        "answer_type": raw.answer_type,
        "image_keys": keys,
        "widths": widths,
        "heights": heights,
        "source_index": raw.source_index,
        "metadata": _metadata_json(raw.metadata),
    }


def _check_reject_share(n_items: int, rejects: list[Reject], limit: float) -> None:
    counted = [r for r in rejects if r.reason not in INTENDED_REASONS]
    total = n_items + len(counted)
    if total and len(counted) / total > limit:
        reasons = Counter(r.reason for r in counted).most_common()
        first = counted[0]
        raise StageError(
            f"{len(counted)} of {total} rows rejected ({len(counted) / total:.0%} > max_reject_share {limit:g}: "
            + ", ".join(f"{k}: {v}" for k, v in reasons)
            + f"; first: row {first.source_index}: {first.message}); fix the column mapping or the data, or raise "
            "max_reject_share",
            key="benchmark.max_reject_share",
        )


def staged_paths(folder: str | Path) -> dict[str, Path]:
    """The workflow's layout of one benchmark's staged tables in ``folder`` (for scripts and tests): the file names
    of the stage table's outputs (:data:`blindspot.stages.table.STAGES`)."""
    from blindspot.stages.table import STAGES

    return {output.name: Path(folder) / Path(output.template).name for output in STAGES["stage"].outputs}


def stage_benchmark(name: str, config: BenchmarkConfigBase, outputs: Mapping[str, Path]) -> StageSummary:
    """Stage one benchmark to ``outputs`` (item_table, images, rejects); the item table is written last."""
    spec = get_benchmark(config.adapter)
    record = provenance("stage", config, benchmark=name, adapter=spec.name)
    items: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    seen_ids: set[str] = set()
    first_seen: dict[str, int] = {}

    with atomic_output(outputs["images"]) as images_tmp:
        sink = _ImageSink(
            images_tmp, with_provenance(IMAGES_SCHEMA, record), config.max_image_pixels, config.max_image_bytes
        )
        try:
            for raw in tqdm(spec.read(config), desc=f"stage {name}", unit="item", mininterval=1.0, delay=0.5):
                if isinstance(raw, Reject):
                    rejects.append(raw)
                    continue
                _check_unique_id(raw, first_seen)
                row = guarded_row(
                    raw.source_index,
                    lambda: _canonical_row(name, raw, sink, config.image_folder(), seen_ids),  # noqa: B023
                    raw.source_id,
                )
                if isinstance(row, Reject):
                    rejects.append(row)
                    continue
                seen_ids.add(row["item_id"])
                items.append(row)
        finally:
            sink.close()

    reasons = dict(Counter(r.reason for r in rejects).most_common())
    try:
        if not items:
            summary = ", ".join(f"{k}: {v}" for k, v in reasons.items()) or "the source has no rows"
            raise StageError(f"no item staged ({summary}); check its config entry", key="benchmark")
        _check_reject_share(len(items), rejects, config.max_reject_share)
        reject_rows = [{"benchmark": name, **r.__dict__} for r in rejects]
        write_table(reject_rows, REJECTS_SCHEMA, record, outputs["rejects"])
        write_table(items, ITEMS_SCHEMA, record, outputs["item_table"])
    except BaseException:  # a refusal, a full disk, a kill: leave none of the three outputs, no orphan images table
        for output in ("rejects", "images"):
            with contextlib.suppress(OSError):  # a read-only folder: report the first error, not the cleanup's
                outputs[output].unlink(missing_ok=True)
        raise
    return StageSummary(items=len(items), rejects=len(rejects), images=len(sink.sizes), reasons=reasons)


def run(config: StageSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    summary = stage_benchmark(job.bench, config.benchmark, outputs)
    reasons = ", ".join(f"{k}={v}" for k, v in summary.reasons.items()) or "none"
    return f"staged {job.bench}: {summary.items} items, {summary.images} images, {summary.rejects} rejects ({reasons})"
