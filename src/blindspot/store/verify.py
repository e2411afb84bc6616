"""``blindspot verify``: check every store and table under the given paths, and name each damaged file with what
to delete and rerun.

- A Zarr store: every array has all its chunks (a missing chunk is damage: arrays store every chunk) and every
  chunk decodes with its checksum (Zarr v3 ``crc32c``). An array written without checksums (by an older
  blindspot) is reported as ``unchecked``.
- A Zarr store whose root ``zarr.json`` is gone, or with an array folder whose ``zarr.json`` is gone (Zarr would
  quietly list the group without it), is damaged.
- A Parquet table: it reads back with page checksums verified (blindspot writes them; every stage reads them
  back verified, through :func:`blindspot.store.tables.read_table`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import zarr
from tqdm import tqdm

from blindspot.store.arrays import arrays, missing_metadata


@dataclass(frozen=True)
class Finding:
    path: Path
    status: str  # ok | damaged | unchecked
    detail: str


def _chunk_slices(array: zarr.Array) -> list[tuple[slice, ...]]:
    """One selection per chunk along the first axis (memory stays at one chunk row)."""
    if array.ndim == 0:
        return [()]
    step = array.chunks[0]
    return [(slice(start, start + step),) for start in range(0, array.shape[0], step)]


def check_store(path: Path) -> Finding:
    problem = missing_metadata(path)
    if problem:
        return Finding(path, "damaged", problem)
    try:
        group = zarr.open_group(store=str(path), mode="r")
        unchecked = []
        for name, array in arrays(group):
            missing = array.nchunks - array.nchunks_initialized
            if missing:
                return Finding(path, "damaged", f"array '{name}' is missing {missing} of {array.nchunks} chunks")
            codecs = [type(c).__name__ for c in array.metadata.codecs] if hasattr(array.metadata, "codecs") else []
            if "Crc32cCodec" not in codecs:
                unchecked.append(name)
            for selection in _chunk_slices(array):
                np.asarray(array[selection])
    except Exception as error:  # a checksum mismatch, an undecodable chunk, damaged metadata
        return Finding(path, "damaged", f"{type(error).__name__}: {str(error).splitlines()[0][:100]}")
    if unchecked:
        return Finding(path, "unchecked", f"no checksums on {', '.join(unchecked)} (written by an older blindspot)")
    return Finding(path, "ok", "")


def check_table(path: Path) -> Finding:
    try:
        pq.read_table(path, page_checksum_verification=True)
    except Exception as error:
        return Finding(path, "damaged", f"{type(error).__name__}: {str(error).splitlines()[0][:100]}")
    return Finding(path, "ok", "")


def targets(paths: list[Path]) -> list[Path]:
    """Every store and table under ``paths`` (stores are not searched inside; temporary siblings are skipped)."""
    found: list[Path] = []
    for root in paths:
        if (root / "zarr.json").is_file() or root.suffix in (".parquet", ".zarr"):
            found.append(root)
            continue
        for path in sorted(root.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue  # resume folders, temporaries of running jobs
            if (path.suffix == ".zarr" and path.is_dir() and not any(p.suffix == ".zarr" for p in path.parents)) or (
                path.suffix == ".parquet" and path.is_file() and not any(p.suffix == ".zarr" for p in path.parents)
            ):
                found.append(path)
    return found


def verify(paths: list[Path], progress: bool = False) -> list[Finding]:
    """Check every store and table under ``paths`` (every chunk is read: a progress bar on request)."""
    found = targets(paths)
    bar = tqdm(found, desc="verify", unit="file", disable=not progress, delay=0.5)
    return [check_store(p) if p.is_dir() else check_table(p) for p in bar]


def action(finding: Finding) -> str:
    """What to do about a damaged file: delete it; Snakemake then reruns the job that makes it."""
    return (
        f"delete '{finding.path}' (blindspot verify --repair deletes every damaged file) and rerun snakemake (the job "
        "that writes it runs again)"
    )


def repair(findings: list[Finding]) -> list[Path]:
    """Delete every damaged store and table, so that the next ``snakemake`` run rebuilds each (a damaged store's
    folder would otherwise stand for a finished output). Returns what was deleted."""
    deleted = []
    for finding in findings:
        if finding.status == "damaged" and finding.path.exists():
            if finding.path.is_dir() and not finding.path.is_symlink():
                shutil.rmtree(finding.path)
            else:
                finding.path.unlink()
            deleted.append(finding.path)
    return deleted
