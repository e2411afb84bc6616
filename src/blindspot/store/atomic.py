"""Atomic outputs: write to a temporary sibling, rename into place only on success.

A killed job therefore never leaves a file or directory at the final path that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_output(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on clean exit, replace ``final`` with it.

    Works for files and directories (e.g. a Zarr store). On an exception the temporary path is removed and
    ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):  # a read-only or full disk: the first error is the one to report
            _remove(tmp)
        raise
    if not tmp.exists():
        raise FileNotFoundError(f"{final}: the writer produced nothing at the temporary path {tmp}")
    replace_path(tmp, final)


def remove_leftovers(final: Path) -> list[Path]:
    """Remove what killed writers of ``final`` left beside it (``.<name>.tmp-*``, ``.<name>.old-*``): a kill -9
    runs no cleanup, and Snakemake lets only one job write an output at a time, so every such sibling is stale."""
    removed = []
    for pattern in (f".{final.name}.tmp-*", f".{final.name}.old-*"):
        for leftover in final.parent.glob(pattern):
            _remove(leftover)
            removed.append(leftover)
    return removed


def write_text(path: Path, text: str) -> None:
    """Write a small text file (a progress record) so that a kill leaves the old version or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def replace_path(new: Path, final: Path) -> None:
    """Move ``new`` (a file or a directory) to ``final``. An old directory at ``final`` is moved aside first
    (os.replace cannot replace a non-empty directory) and deleted only once ``new`` is in place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        try:
            os.replace(new, final)
        except BaseException:
            os.replace(old, final)  # put the old store back: never leave nothing
            raise
        shutil.rmtree(old)
    else:
        os.replace(new, final)


@contextmanager
def atomic_outputs(finals: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """Several outputs written as one: yield a temporary sibling for each; on clean exit move every one into place,
    on an exception remove them all and leave every final path as it was (the old outputs, or none). A job that
    writes tables and a report that cites them never leaves new tables beside an old report."""
    temporaries: dict[str, Path] = {}
    for name, final in finals.items():
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(final)
        temporaries[name] = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield temporaries
        absent = [str(finals[name]) for name, tmp in temporaries.items() if not tmp.exists()]
        if absent:
            raise FileNotFoundError(f"the writer produced nothing for {', '.join(absent[:3])}")
    except BaseException:
        for tmp in temporaries.values():
            with contextlib.suppress(OSError):  # a full disk: the first error is the one to report
                _remove(tmp)
        raise
    for name, tmp in temporaries.items():
        replace_path(tmp, finals[name])


_PARTIALS: dict[Path, Callable[[], int]] = {}
"""The resume folders of the job running in this process, each with how to count its finished pieces."""


def _files(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else 0


def register_partial(folder: Path, finished: Callable[[], int] | None = None) -> None:
    """Record a resume folder of the running job and how to count its finished pieces (default: its files), so
    that a job that fails on the disk or memory can say what of it was kept (:func:`settle_partials`)."""
    _PARTIALS[folder] = finished or (lambda: _files(folder))


def settle_partials() -> list[tuple[Path, int]]:
    """After a failure: remove the registered resume folders that hold no finished work, and return those that do,
    with their count of finished pieces (the rerun resumes from them)."""
    kept = []
    for folder, finished in _PARTIALS.items():
        try:
            count = finished() if folder.is_dir() else 0
        except Exception:  # a folder too damaged to count: nothing to resume from
            count = 0
        if count:
            kept.append((folder, count))
        else:
            with contextlib.suppress(OSError):
                _remove(folder)
    return kept
