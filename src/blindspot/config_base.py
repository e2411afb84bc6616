"""What every config section is built on, and the filesystem checks that are a step of their own.

Validating a config's *shape* (keys, types, ranges) never touches the filesystem: a SLURM submit node may not see
the paths a compute node sees, and ``blindspot toy-data`` must be able to create the path a config names. Checking
that the paths exist is :func:`blindspot.config.check_paths`, run by ``blindspot check-config`` and by the
Snakefile unless ``check_paths: false``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from blindspot.hub_cache import hub_cache_dir, is_hub_id, resolve_model_dir

PathKind = Literal["file", "directory", "any", "model"]


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def names_a_folder(value: str, hub_id: str | None = None) -> bool:
    """Whether a model ``path`` that is not there names a local folder rather than a hub id: it is written as a
    path (./, ../, /, ~), its first part is a local folder (models/...), or the model's ``hub_id`` names another
    repository."""
    if value.startswith(("./", "../", "/", "~")) or value.count("/") != 1:
        return True
    if Path(value.split("/", 1)[0]).expanduser().is_dir():
        return True
    return hub_id is not None and hub_id != value


def path_problem(value: str, kind: PathKind, hub_id: str | None = None, revision: str | None = None) -> str | None:
    """What is wrong with a configured path (None when it is fine). A model path may be a hub id held in the local
    Hugging Face cache (:mod:`blindspot.hub_cache`)."""
    path = Path(value).expanduser()
    if kind == "directory" and not path.is_dir():
        return f"no such directory '{value}'"
    if kind == "file" and not path.is_file():
        return f"no such file '{value}'"
    if kind == "any" and not path.exists():
        return f"no such file or directory '{value}'"
    if kind == "model" and not Path(resolve_model_dir(value, revision)).is_dir():
        if is_hub_id(value) and not names_a_folder(value, hub_id):
            return (
                f"'{value}' is neither a model directory nor in the local Hugging Face cache ({hub_cache_dir()}); "
                f"fetch it with: hf download {value}"
            )
        source = hub_id or "ORG/NAME"
        return f"no such model directory '{value}'; fetch it with: hf download {source} --local-dir {value}"
    return None
