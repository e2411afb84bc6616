"""Model names from the local Hugging Face cache, offline.

A model's ``path`` may be a hub id (``Qwen/Qwen2.5-VL-3B-Instruct``) instead of a folder: when no such folder
exists, the id is looked up in the local Hugging Face cache (what ``hf download Qwen/Qwen2.5-VL-3B-Instruct``
without ``--local-dir`` fills: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) and
the cached snapshot's folder is used, with no network. The cache location is read from the environment at each
call, so a job sees the environment it runs in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HUB_ID_PATTERN = r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$"


def hub_cache_dir() -> Path:
    """The local Hugging Face hub cache, as ``huggingface_hub`` finds it."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def is_hub_id(value: str) -> bool:
    return re.fullmatch(HUB_ID_PATTERN, value) is not None


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of a model (``revision``: a branch, tag or commit; default ``main``), or None
    when the cache does not hold it. Never touches the network."""
    if not is_hub_id(repo_id):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=hub_cache_dir(), local_files_only=True, repo_type="model"
        )
    except (LocalEntryNotFoundError, ValueError, OSError):  # not cached, or a malformed revision
        return None
    return Path(folder)


def resolve_model_dir(path: str, revision: str | None = None) -> str:
    """A model's folder: ``path`` itself when it is a folder, else the cached snapshot of the hub id ``path``,
    else ``path`` unchanged (the caller reports it missing)."""
    if Path(path).expanduser().is_dir():
        return path
    snapshot = cached_snapshot(path, revision)
    return str(snapshot) if snapshot is not None else path
