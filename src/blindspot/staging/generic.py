"""The ``generic`` adapter: a benchmark described entirely by its config entry.

A local parquet or JSONL file (or a folder of parquet shards) plus an optional image folder, a column mapping and
an answer type. Images may be embedded bytes, Hugging Face image structs, base64 strings, or paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blindspot.config import GenericBenchmark
from blindspot.staging.gold import parse_options
from blindspot.staging.registry import register_adapter
from blindspot.staging.schema import RawItem, Reject, RejectedItem
from blindspot.staging.sources import SourceError, iter_rows, source_columns


def _mapped_columns(config: GenericBenchmark) -> dict[str, str | list[str] | None]:
    cols = config.columns
    return {
        "id": cols.id,
        "question": cols.question,
        "options": cols.options,
        "answer": cols.answer,
        "image": cols.image,
    }


def _check_columns(config: GenericBenchmark, available: list[str]) -> None:
    for key, column in _mapped_columns(config).items():
        names = column if isinstance(column, list) else [column] if column else []
        for name in names:
            if name not in available:
                raise SourceError(
                    f"columns.{key}: column '{name}' is not in '{config.path}' (columns: {', '.join(available)})"
                )


def _options(row: dict[str, Any], spec: str | list[str] | None) -> list[str] | None:
    if spec is None:
        return None
    if isinstance(spec, list):
        return parse_options([row.get(name) for name in spec])
    return parse_options(row.get(spec))


def _metadata(row: dict[str, Any], config: GenericBenchmark) -> dict[str, Any]:
    used = {c for v in _mapped_columns(config).values() for c in (v if isinstance(v, list) else [v]) if c}
    names = config.columns.metadata if config.columns.metadata is not None else [c for c in row if c not in used]
    out = {}
    for name in names:
        value = row.get(name)
        if isinstance(value, bytes | bytearray | dict) or (isinstance(value, str) and len(value) > 2048):
            continue  # binary payloads (images) stay out of the metadata
        out[name] = value
    return out


@register_adapter("generic", "Local parquet/JSONL + image folder, described by a column mapping in config.")
def read_generic(config: GenericBenchmark) -> Iterator[RawItem | Reject]:
    path = Path(config.path)
    available = source_columns(path)
    if available is not None:
        _check_columns(config, available)
    for index, row in enumerate(iter_rows(path)):
        if config.limit is not None and index >= config.limit:
            return
        if isinstance(row, str):
            yield Reject(index, None, "malformed_row", row)
            continue
        source_id = row.get(config.columns.id) if config.columns.id else None
        try:
            options = _options(row, config.columns.options)
        except RejectedItem as error:
            yield Reject(index, None if source_id is None else str(source_id), error.reason, error.message)
            continue
        yield RawItem(
            source_index=index,
            source_id=None if source_id is None else str(source_id),
            question=row.get(config.columns.question),
            options=options,
            answer=row.get(config.columns.answer),
            image=row.get(config.columns.image),
            metadata=_metadata(row, config),
        )
