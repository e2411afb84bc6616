"""Parquet outputs with provenance, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from blindspot.atomic import atomic_output
from blindspot.provenance import PARQUET_KEY


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
