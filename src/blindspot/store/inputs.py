"""What a stage reads is what the stage before it wrote: a foreign or mismatched input is one line.

Every output carries provenance naming the stage that wrote it (Parquet: in the schema's metadata; a Zarr store:
in its root attributes), and every table has its contract schema (:mod:`blindspot.contracts.tables`). A job checks
each input before it reads it: a table written by another stage (a decay table where predictions are expected), a
Parquet file blindspot did not write, or one that lacks the contract's columns is refused in one line naming the
file and the output expected, never a traceback or a silently wrong join.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from blindspot.errors import InputError
from blindspot.store.provenance import PARQUET_KEY


def _store_record(path: Path) -> dict[str, object] | None:
    """The provenance in a Zarr store's root metadata, read as JSON (no Zarr needed); None where it has none."""
    try:
        metadata = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a missing or damaged root: the store's own opening names it, with how to rebuild it
    record = metadata.get("attributes", {}).get("provenance") if isinstance(metadata, dict) else None
    return record if isinstance(record, dict) else None


def _table_record(path: Path) -> tuple[dict[str, object] | None, list[str]]:
    try:
        schema = pq.read_schema(path)
    except Exception as error:  # not Parquet at all, or a damaged footer
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise InputError(f"'{path}' is not a readable Parquet table ({first}); delete it and rerun the step that "
                         "writes it") from None  # fmt: skip
    raw = (schema.metadata or {}).get(PARQUET_KEY)
    try:
        record = json.loads(raw) if raw is not None else None
    except ValueError:
        record = None
    return (record if isinstance(record, dict) else None), list(schema.names)


def expect_output(path: str | Path, stage: str, output: str, schema: pa.Schema | None = None) -> None:
    """Refuse, in one line, a file at ``path`` that is not the ``output`` of the ``stage`` step (with ``schema``'s
    columns, for a table). A store without root metadata is left to the store's reader (it says how to rebuild)."""
    path = Path(path)
    expected = f"the {stage} step's {output} output"
    hint = f"point the input at {expected}, or delete the file and rerun snakemake"
    if path.is_dir():
        if not (path / "zarr.json").is_file():
            return
        record, columns = _store_record(path), None
    else:
        record, columns = _table_record(path)
    if record is None or "stage" not in record:
        raise InputError(f"'{path}' was not written by blindspot (no provenance): {expected} is expected; {hint}")
    if record.get("stage") != stage:
        raise InputError(f"'{path}' is the {record.get('stage')} step's output, not {expected}; {hint}")
    missing = [name for name in (schema.names if schema is not None else []) if columns is not None and name
               not in columns]  # fmt: skip
    if missing:
        raise InputError(
            f"'{path}' lacks the columns {', '.join(missing[:5])} of {expected} (written by another blindspot "
            f"version, or another table); {hint}"
        )
