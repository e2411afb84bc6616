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

from blindspot.benchmarks import get_benchmark
from blindspot.benchmarks.gold import canonical_gold
from blindspot.benchmarks.registry import BenchmarkConfigBase
from blindspot.benchmarks.sources import guarded_row
from blindspot.contracts.items import RawItem, Reject, RejectedItem
from blindspot.contracts.tables import IMAGES_SCHEMA, ITEMS_SCHEMA, REJECTS_SCHEMA
from blindspot.errors import BlindspotError
from blindspot.images import ImageError, check_bytes, decode_rgb, resolve_image_bytes, sha256_hex
from blindspot.progress import Bar
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
    repeated_ids: int = 0
    """Source ids shared by several rows (MME's question_id is shared by the two questions of an image): their
    items are keyed ``<id>/<question>``."""


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

    def abort(self) -> None:
        """Close without writing what is pending, after a failure: the first error is the one to report (a flush on
        a full disk would bury it under a closed-file error)."""
        with contextlib.suppress(Exception):
            self._writer.close()


INTENDED_REASONS = frozenset({"filtered_out"})
"""Reject reasons that are the user's choice (a ``filter``), not a problem: they do not count towards the
``max_reject_share`` check."""


def _rekey(items: list[dict[str, Any]], suffix: Any) -> int:
    """Append ``/<suffix(item)>`` to the id of every item whose id repeats; returns how many ids repeated."""
    counts = Counter(item["item_id"] for item in items)
    repeated = {item_id for item_id, n in counts.items() if n > 1}
    for item in items:
        if item["item_id"] in repeated:
            item["item_id"] = f"{item['item_id']}/{suffix(item)}"
    return len(repeated)


def unique_ids(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Reject], int]:
    """Items whose mapped id repeats (MME's ``question_id`` is shared by the two questions of an image) are keyed
    ``<id>/<question>``, as a list of id columns ``[question_id, question]`` would key them; where that still
    repeats (MMVP asks one question of two images), ``/<the first image's sha256, 12 digits>`` follows. A row that
    repeats an earlier one's id, question and images is a ``duplicate_id`` reject. Returns the items, the rejects
    and how many mapped ids repeated; ids that do not repeat are kept as they are."""
    mapped = [item for item in items if item["source_id"] is not None]
    repeated = _rekey(mapped, lambda item: item["question"])
    _rekey(mapped, lambda item: item["image_keys"][0][:12])
    kept: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    first_row: dict[str, int] = {}
    for item in items:
        source_id = item.pop("source_id")
        if item["item_id"] in first_row:
            message = (
                f"item_id '{item['item_id']}' repeats row {first_row[item['item_id']]} (the same id, question and "
                "images)"
            )
            rejects.append(Reject(item["source_index"], source_id, "duplicate_id", message))
            continue
        first_row[item["item_id"]] = item["source_index"]
        kept.append(item)
    return kept, rejects, repeated


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
    if raw.source_id is None and item_id in seen_ids:
        raise RejectedItem("duplicate_id", f"item_id '{item_id}' (a content hash) appeared earlier")
    return {
        "benchmark": name,
        "item_id": item_id,
        "source_id": raw.source_id,
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

    with atomic_output(outputs["images"]) as images_tmp:
        sink = _ImageSink(
            images_tmp, with_provenance(IMAGES_SCHEMA, record), config.max_image_pixels, config.max_image_bytes
        )
        try:
            bar = Bar(desc=f"stage {name}", unit="row", mininterval=1.0, delay=0.5)
            for raw in spec.read(config):
                bar.update(1)
                if isinstance(raw, Reject):
                    rejects.append(raw)
                    continue
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
        except BaseException:
            sink.abort()
            raise
        sink.close()

    items, duplicates, repeated_ids = unique_ids(items)
    rejects = sorted([*rejects, *duplicates], key=lambda r: r.source_index)
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
    return StageSummary(len(items), len(rejects), len(sink.sizes), reasons, repeated_ids)


def run(config: StageSlice, inputs: Paths, outputs: Paths, job: JobContext) -> str:
    summary = stage_benchmark(job.bench, config.benchmark, outputs)
    reasons = ", ".join(f"{k}={v}" for k, v in summary.reasons.items()) or "none"
    line = f"staged {job.bench}: {summary.items} items, {summary.images} images, {summary.rejects} rejects ({reasons})"
    if summary.repeated_ids:
        line += (
            f"; {summary.repeated_ids} ids of columns.id repeat (several questions share them), so those items are "
            "keyed <id>/<question>"
        )
    return line
