"""Model names from the local Hugging Face cache, offline, and never outside it.

A model's ``path`` may be a hub id (``Qwen/Qwen2.5-VL-3B-Instruct``) instead of a folder: when no such folder
exists, the id is looked up in the local Hugging Face cache (what ``hf download Qwen/Qwen2.5-VL-3B-Instruct``
without ``--local-dir`` fills: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) and
the cached snapshot's folder is used, with no network. The cache location is read from the environment at each
call, so a job sees the environment it runs in.

The lookup stays inside the cache (the cache's layout is ``models--ORG--NAME/{refs/<revision>, snapshots/<commit>,
blobs/}``):

- a ``revision`` is a branch, tag or commit name (git's rules for a ref name: no ``..``, no component that starts
  with a dot, no absolute path, no backslash, space or control character); anything else is refused in one line;
- a ref file (``refs/main``) holds a commit hash, 40 hexadecimal digits; anything else (a path, say) is refused in
  one line naming the file;
- the resolved snapshot lies inside the cache after every link is followed (the snapshot's own links into
  ``blobs/`` are the cache's and fine); a snapshot that is a link out of the cache is refused in one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from blindspot.errors import BlindspotError

HUB_ID_PATTERN = r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$"
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|\.lock$|(?:^|/)\.")
"""What git's check-ref-format refuses in a ref name (and so what no branch or tag can be called)."""


class HubCacheError(BlindspotError):
    """A revision or a cache entry that would lead outside the local Hugging Face cache (one line)."""


def hub_cache_dir() -> Path:
    """The local Hugging Face hub cache, as ``huggingface_hub`` finds it."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def is_hub_id(value: str) -> bool:
    return re.fullmatch(HUB_ID_PATTERN, value) is not None


def revision_problem(revision: str) -> str | None:
    """Why ``revision`` is not a branch, tag or commit name (None when it is one)."""
    if not revision or revision == "@" or _REF_FORBIDDEN.search(revision):
        return (
            f"{revision!r} is not a branch, tag or commit name (no '..', no leading '/' or '.', no spaces or "
            "backslashes): name the revision as the hub does, e.g. main or a 40-digit commit hash"
        )
    return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve(strict=False).relative_to(root.resolve(strict=False))
    except ValueError:
        return False
    return True


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of a model (``revision``: a branch, tag or commit; default ``main``), or None
    when the cache does not hold it. Never touches the network; raises :class:`HubCacheError` (key
    ``model.revision``, or naming the cache file) where the lookup would leave the cache."""
    if not is_hub_id(repo_id):
        return None
    revision = revision or "main"
    if problem := revision_problem(revision):
        raise HubCacheError(problem, key="model.revision")
    cache = hub_cache_dir()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    if COMMIT_PATTERN.fullmatch(revision):
        commit = revision
    else:
        ref = repo / "refs" / revision
        if not ref.is_file():
            return None
        if not _inside(ref, repo / "refs"):
            raise HubCacheError(f"the cache's ref file '{ref}' links outside the cache's refs: delete it")
        commit = ref.read_text(encoding="utf-8", errors="replace").strip()
        if not COMMIT_PATTERN.fullmatch(commit):
            raise HubCacheError(
                f"the cache's ref file '{ref}' holds {commit[:60]!r}, not a commit hash: delete it, or fetch the "
                f"model again with: hf download {repo_id}"
            )
    snapshot = repo / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    if not _inside(snapshot, cache):
        raise HubCacheError(
            f"the cached snapshot '{snapshot}' is a link to '{snapshot.resolve()}', outside the Hugging Face cache "
            f"({cache}): delete it and fetch the model again with: hf download {repo_id}"
        )
    return snapshot


def resolve_model_dir(path: str, revision: str | None = None) -> str:
    """A model's folder: ``path`` itself when it is a folder, else the cached snapshot of the hub id ``path``,
    else ``path`` unchanged (the caller reports it missing)."""
    if Path(path).expanduser().is_dir():
        return path
    snapshot = cached_snapshot(path, revision)
    return str(snapshot) if snapshot is not None else path
