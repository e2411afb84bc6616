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


def writable(group: Any, name: str) -> Any:
    """An existing array of ``group`` opened to store every chunk written, even one equal to the fill value (an
    array opened by name forgets the setting it was created with: an all-NaN block would be left unwritten and the
    finished store taken for damaged)."""
    return group[name].with_config(EVERY_CHUNK)


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


def rebuild_hint(path: str | Path, stage: str) -> str:
    """How to rebuild a damaged store: Snakemake sees its folder and would never rerun the step that writes it."""
    return (
        f"run `blindspot verify --repair {path}` (it deletes the damaged store), then snakemake reruns the {stage} step"
    )


def missing_metadata(path: Path) -> str | None:
    """What metadata a store lacks on disk: its root ``zarr.json``, or an array's (a folder of chunks ``c/``
    without ``zarr.json``: Zarr would list the group without that array, and nothing would say it is gone)."""
    if not (path / "zarr.json").is_file():
        return "the store's root metadata (zarr.json) is missing"
    for folder in sorted(p for p in path.rglob("c") if p.is_dir()):
        array = folder.parent
        if not (array / "zarr.json").is_file() and not any(part == "c" for part in array.relative_to(path).parts):
            return f"array '{array.relative_to(path)}' has chunks but no zarr.json (its metadata is missing)"
    return None


def open_finished(path: str | Path, stage: str, required: tuple[str, ...]) -> Any:
    """A finished store, opened for reading: one line (:class:`StoreDamageError`) naming the store and how to rebuild
    it where its metadata, a required array or a chunk is gone, never a traceback."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise StoreDamageError(f"no {stage} output at '{path}'; run the {stage} step first")
    problem = missing_metadata(path)
    if problem is None:
        try:
            group = zarr.open_group(store=str(path), mode="r")
        except Exception as error:  # metadata that does not parse
            problem = f"its metadata cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:80]})"
        else:
            absent = [name for name in required if name not in group]
            problem = f"its array(s) {', '.join(absent)} are gone" if absent else None
    if problem is not None:
        raise StoreDamageError(f"'{path}' is damaged: {problem}; {rebuild_hint(path, stage)}")
    check_complete(group, path, stage)
    return group


def check_complete(group: Any, path: str | Path, stage: str) -> None:
    """Raise :class:`StoreDamageError` if any array of a finished store lacks chunks."""
    for name, array in arrays(group):
        missing = array.nchunks - array.nchunks_initialized
        if missing:
            raise StoreDamageError(
                f"'{path}': array '{name}' is missing {missing} of {array.nchunks} chunks (damaged or partly "
                f"deleted); {rebuild_hint(path, stage)}"
            )


def consolidate(path: str | Path) -> None:
    """Write the store's consolidated metadata (every array's metadata in its root ``zarr.json``), so xarray opens
    it without listing folders or warning; called once a store is whole."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "consolidated metadata is not part of the Zarr v3 spec" notes
        zarr.consolidate_metadata(str(path))


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
        f"is damaged: {rebuild_hint(path, stage)}"
    )
