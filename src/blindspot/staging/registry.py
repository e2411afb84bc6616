"""Registry of benchmark adapters, keyed by the ``adapter`` field of a benchmark's config."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from blindspot.staging.schema import RawItem, Reject


class Adapter(Protocol):
    """Reads one benchmark's source files and yields raw items (or per-row rejects) in source order."""

    def __call__(self, config: Any) -> Iterator[RawItem | Reject]: ...


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    read: Adapter
    description: str

    def image_root(self, config: Any) -> Path | None:
        root = getattr(config, "image_root", None)
        return Path(root) if root else None


_ADAPTERS: dict[str, AdapterSpec] = {}


def register_adapter(name: str, description: str) -> Callable[[Adapter], Adapter]:
    def decorate(read: Adapter) -> Adapter:
        if name in _ADAPTERS:
            raise ValueError(f"adapter '{name}' is registered twice")
        _ADAPTERS[name] = AdapterSpec(name=name, read=read, description=description)
        return read

    return decorate


def get_adapter(name: str) -> AdapterSpec:
    # Importing the adapter modules registers them.
    from blindspot.staging import generic  # noqa: F401

    try:
        return _ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown adapter '{name}' (known: {', '.join(sorted(_ADAPTERS))})") from None


def adapter_names() -> list[str]:
    from blindspot.staging import generic  # noqa: F401

    return sorted(_ADAPTERS)
