"""Provenance carried by every output: config-slice hash, the slice itself, package versions.

No timestamps: rerunning a job on the same inputs gives byte-identical outputs.

Parquet outputs carry it as schema metadata under the key ``blindspot``; Zarr stores as the ``provenance``
attribute.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel

import blindspot

PARQUET_KEY = b"blindspot"
_PACKAGES = (
    "numpy",
    "opencv-python-headless",
    "pyarrow",
    "polars",
    "zarr",
    "numcodecs",
    "pydantic",
    "torch",
    "transformers",
)


def _as_json(value: Any) -> Any:
    """What ``json`` cannot write itself: pydantic models at any depth (in JSON mode: the config a user wrote, not
    a Python repr), paths, sets (sorted) and numpy scalars. Anything else is an error, never a silent ``str()``."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} into provenance JSON")


def canonical_json(value: Any) -> str:
    """Stable JSON for hashing: sorted keys, no whitespace, pydantic models (at any depth) dumped in JSON mode."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_as_json)


def slice_hash(value: Any) -> str:
    """Short sha256 of a config slice; equal slices give equal hashes across runs and machines."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def inputs_key(config_slice: Any, *files: Path, extra: str = "") -> str:
    """A short key for a job's slice plus the bytes of its input files (and ``extra``, e.g. a weights
    fingerprint): partial outputs (predict shards, extract blocks) are reused only by a job with the same slice
    and the same inputs."""
    digest = hashlib.sha256(slice_hash(config_slice).encode())
    for path in files:
        digest.update(Path(path).read_bytes())
    digest.update(extra.encode())
    return digest.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    versions = {"blindspot": blindspot.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def git_commit() -> str | None:
    """The commit of the blindspot checkout this code runs from (with ``+dirty`` where its tracked files changed);
    None for an installed copy outside a git checkout."""
    root = Path(blindspot.__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def provenance(stage: str, config_slice: Any, **extra: Any) -> dict[str, Any]:
    """The provenance record of one stage output: what made it (stage, config slice and its hash, package
    versions, the git commit of blindspot), when (UTC) and where (host, CPU or GPU)."""
    record = {
        "stage": stage,
        "config_hash": slice_hash(config_slice),
        "config": json.loads(canonical_json(config_slice)),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
    }
    record.update(extra)
    return record
