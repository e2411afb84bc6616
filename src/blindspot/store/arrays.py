"""Shared helpers for the project's Zarr v3 stores: checksummed arrays and the checks that find damage.

Every array is written with Zarr v3's ``crc32c`` codec last in its codec chain (a chunk whose bytes changed fails
its checksum when read) and with every chunk stored, even one equal to the fill value (so a missing chunk means
damage, never "all fill"). Readers call :func:`check_complete` when they open a store: a deleted chunk is an error
naming the store, not a black image or NaN hidden states.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from zarr.codecs import Crc32cCodec
from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning

from blindspot.errors import BlindspotError

CHECKSUM = Crc32cCodec()
EVERY_CHUNK = {"write_empty_chunks": True}


class StoreDamageError(BlindspotError):
    """A store or table whose bytes are not what was written (one line naming the file and what to do)."""


def checked_codecs(compressor: Any | None = None) -> list[Any]:
    """The bytes-to-bytes codecs of an array: its compressor (if any), then the checksum."""
    return [compressor, CHECKSUM] if compressor is not None else [CHECKSUM]


def create_checked_array(group: Any, name: str, compressor: Any | None = None, **kwargs: Any) -> Any:
    """``group.create_array`` with the checksum codec and every chunk stored."""
    return group.create_array(name, compressors=checked_codecs(compressor), config=EVERY_CHUNK, **kwargs)


def write_array(group: Any, name: str, values: np.ndarray, dims: tuple[str, ...]) -> None:
    """Write a whole (small, coordinate-like) array with dimension names; text as Zarr v3 variable-length UTF-8."""
    dtype = str if values.dtype.kind == "U" else values.dtype
    create_checked_array(group, name, shape=values.shape, dtype=dtype, dimension_names=dims)[...] = values


def arrays(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every array of a group, nested groups included, as (path, array). Files that are not Zarr (Snakemake's
    ``.snakemake_timestamp`` in a directory output) are skipped without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZarrUserWarning)
        members = sorted(group.members(), key=lambda m: m[0])
    for name, member in members:
        if hasattr(member, "nchunks"):
            yield f"{prefix}{name}", member
        else:
            yield from arrays(member, f"{prefix}{name}/")


def check_complete(group: Any, path: str | Path, stage: str) -> None:
    """Raise :class:`StoreDamageError` if any array of a finished store lacks chunks."""
    for name, array in arrays(group):
        missing = array.nchunks - array.nchunks_initialized
        if missing:
            raise StoreDamageError(
                f"'{path}': array '{name}' is missing {missing} of {array.nchunks} chunks (damaged or partly "
                f"deleted); delete the store and rerun the {stage} step"
            )


def settle_pending_reads(timeout: float = 60.0) -> None:
    """Wait for the chunk reads still running on Zarr's event loop. When one chunk of a read fails, Zarr raises at
    once and leaves the reads of its sibling chunks pending; at interpreter exit asyncio reports each one it has to
    destroy ("Task was destroyed but it is pending!", "Event loop is closed" tracebacks), up to hundreds of lines
    below the one-line error. Letting them finish first leaves nothing to report."""

    async def settle() -> None:
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=timeout)

    sync(settle())


def damaged(path: str | Path, stage: str, error: Exception) -> StoreDamageError:
    """The one-line error for a chunk that fails its checksum or cannot be decoded (the failed read's pending
    sibling reads settled first)."""
    settle_pending_reads()
    return StoreDamageError(
        f"'{path}': a chunk cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:80]}); the store "
        f"is damaged: delete it and rerun the {stage} step"
    )
