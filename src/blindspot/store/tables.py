"""Parquet outputs with provenance, written atomically with page checksums, and read back with them verified."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from blindspot.errors import InputError
from blindspot.store.atomic import atomic_output
from blindspot.store.provenance import PARQUET_KEY


def with_provenance(schema: pa.Schema, record: dict[str, Any]) -> pa.Schema:
    return schema.with_metadata({PARQUET_KEY: json.dumps(record, sort_keys=True).encode()})


def read_provenance(path: str | Path) -> dict[str, Any]:
    metadata = pq.read_schema(path).metadata or {}
    if PARQUET_KEY not in metadata:
        raise KeyError(f"'{path}' carries no blindspot provenance")
    return json.loads(metadata[PARQUET_KEY])


def write_table(
    rows: list[dict[str, Any]] | pa.Table, schema: pa.Schema, record: dict[str, Any], path: str | Path
) -> None:
    """Write rows (or a table) with ``schema`` and provenance ``record`` to ``path``, atomically."""
    schema = with_provenance(schema, record)
    table = rows.cast(schema) if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


def _damaged(path: str | Path, error: Exception) -> InputError:
    first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
    return InputError(
        f"'{path}' is damaged ({first}); delete it and rerun the step that wrote it (blindspot verify --repair "
        "deletes every damaged file)"
    )


def read_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """A Parquet table with its page checksums verified: a flipped byte is a one-line :class:`InputError` naming
    the file, never a silently wrong value (polars and pyarrow skip the check unless asked)."""
    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise _damaged(path, error) from None


def iter_rows(path: str | Path, columns: list[str], batch_size: int) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet table, streamed batch by batch with page checksums verified (as :func:`read_table`,
    for tables too large to hold: the staged images)."""
    try:
        batches = pq.ParquetFile(path, page_checksum_verification=True).iter_batches(batch_size, columns=columns)
        while True:
            try:
                rows = next(batches).to_pylist()
            except StopIteration:
                return
            yield from rows
    except FileNotFoundError:
        raise
    except Exception as error:  # a damaged page fails while its batch is read
        raise _damaged(path, error) from None


def read_frame(path: str | Path, columns: list[str] | None = None) -> pl.DataFrame:
    """:func:`read_table` as a polars frame."""
    frame = pl.from_arrow(read_table(path, columns))
    assert isinstance(frame, pl.DataFrame)
    return frame
