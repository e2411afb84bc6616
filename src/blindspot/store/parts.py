"""Gathering a split job's parts into the output the unsplit job writes (:mod:`blindspot.contracts.parts`).

A part's outputs carry ``part`` (``2-of-3``) in their provenance. The gather checks that it has every part of one
split, made by the same stage with the same config slice, in order; the gathered output's provenance is the first
part's with ``part`` replaced by ``gathered`` (the parts' count, hosts and creation times).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from blindspot.contracts.parts import Part
from blindspot.errors import InputError
from blindspot.store.tables import read_provenance, read_table


def part_record(record: dict[str, Any], part: Part) -> dict[str, Any]:
    """A part's provenance: the job's, with the part's label (an unsplit job's is unchanged)."""
    return record if part.whole else record | {"part": part.label}


def gathered_record(records: Sequence[dict[str, Any]], paths: Sequence[Path | str]) -> dict[str, Any]:
    """The gathered output's provenance, after checking that ``records`` are parts 1..N of one split made by one
    stage with one config slice (a one-line error naming the first part that is not)."""
    if not records:
        raise InputError("no parts to gather")
    count = len(records)
    first = records[0]
    for k, (record, path) in enumerate(zip(records, paths, strict=True), start=1):
        expected = Part(k, count).label
        if record.get("part") != expected:
            raise InputError(
                f"'{path}' is part {record.get('part') or '(none)'} where part {expected} was expected: rerun the "
                "split through snakemake"
            )
        if (record.get("stage"), record.get("config_hash")) != (first.get("stage"), first.get("config_hash")):
            raise InputError(
                f"'{path}' was made by another stage or config slice than '{paths[0]}' "
                f"({record.get('stage')}/{record.get('config_hash')}): rerun the split through snakemake"
            )
    gathered = {key: value for key, value in first.items() if key != "part"}
    gathered["gathered"] = {
        "parts": count,
        "hosts": [record.get("host") for record in records],
        "created": [record.get("created") for record in records],
    }
    return gathered


def gather_tables(paths: Sequence[Path], schema: pa.Schema) -> tuple[pa.Table, dict[str, Any]]:
    """Parts' tables concatenated in part order, and the gathered provenance."""
    records = [read_provenance(path) for path in paths]
    record = gathered_record(records, paths)
    tables = [read_table(path).select(schema.names).cast(schema) for path in paths]
    return pa.concat_tables(tables), record
