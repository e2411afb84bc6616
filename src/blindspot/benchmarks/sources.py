"""Row readers for local benchmark files: parquet (a file or a folder of shards) and JSONL.

Rows are streamed batch by batch, so a benchmark with embedded images never sits in memory whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.parquet as pq

from blindspot.contracts.items import Reject, RejectedItem
from blindspot.errors import BlindspotError


class SourceError(BlindspotError):
    """The source file as a whole cannot be read (a config problem, not a per-item reject). Its key is relative
    to the benchmark's config entry (``benchmark.path``)."""

    def __init__(self, message: str, key: str = "benchmark.path") -> None:
        super().__init__(message, key)


def parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise SourceError(f"no .parquet files under '{path}'")
        return files
    return [path]


def source_columns(path: Path) -> list[str] | None:
    """Column names of a parquet source (None for JSONL, whose rows may differ)."""
    if path.is_dir() or path.suffix == ".parquet":
        file = parquet_files(path)[0]
        try:
            return list(pq.read_schema(file).names)
        except Exception as error:  # pyarrow raises several types for a damaged or empty file
            raise unreadable(file, error) from None
    return None


def unreadable(file: Path, error: Exception) -> SourceError:
    """The one-line error for a parquet source that cannot be read (empty, truncated, not parquet)."""
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return SourceError(f"cannot read parquet '{file}' ({detail}); replace or re-download it")


def iter_rows(path: Path, columns: list[str] | None = None, batch_size: int = 64) -> Iterator[dict[str, Any] | str]:
    """Yield each row as a dict, in file order. A malformed JSONL line is yielded as its error message (str)."""
    if path.is_dir() or path.suffix == ".parquet":
        for file in parquet_files(path):
            try:
                reader = pq.ParquetFile(file, page_checksum_verification=True)
            except Exception as error:  # pyarrow raises several types for a corrupt file
                raise unreadable(file, error) from None
            wanted = [c for c in columns if c in reader.schema_arrow.names] if columns else None
            batches = reader.iter_batches(batch_size=batch_size, columns=wanted)
            while True:  # a damaged page fails while its batch is read: one line naming the file, never a traceback
                try:
                    rows = next(batches).to_pylist()
                except StopIteration:
                    break
                except Exception as error:
                    raise unreadable(file, error) from None
                yield from rows
    elif path.suffix in {".jsonl", ".ndjson"}:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield f"line {number} is not valid UTF-8 (byte {error.start})"
                    continue
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    yield f"line {number} is not valid JSON: {error.msg}"
                    continue
                except RecursionError:
                    yield f"line {number} nests deeper than the JSON reader goes (a value nested thousands deep)"
                    continue
                if not isinstance(row, dict):
                    yield f"line {number} is not a JSON object"
                    continue
                yield row
    else:
        raise SourceError(f"'{path}' is neither .parquet, .jsonl nor a folder of parquet shards")


T = TypeVar("T")


def row_failure(error: Exception) -> str:
    """A row's unexpected error as a reject message: one line, bounded."""
    text = " ".join(str(error).split())
    return f"the row could not be read ({type(error).__name__}: {text[:300]})"


def guarded_row(index: int, convert: Callable[[], T], source_id: str | None = None) -> T | Reject:
    """One row through ``convert``: an error the row's data causes (odd types, characters, nesting) makes that
    row a reject (its own reason, or ``bad_row``), never the end of the benchmark. Errors of the machine (a full
    disk, no memory) and of the config (:class:`BlindspotError`) still stop it."""
    try:
        return convert()
    except RejectedItem as error:
        return Reject(index, source_id, error.reason, error.message)
    except (BlindspotError, OSError, MemoryError):
        raise
    except Exception as error:
        return Reject(index, source_id, "bad_row", row_failure(error))
