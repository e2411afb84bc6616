"""What every config section is built on, and the filesystem checks that are a step of their own.

Validating a config's *shape* (keys, types, ranges) never touches the filesystem: a SLURM submit node may not see
the paths a compute node sees, and ``blindspot toy-data`` must be able to create the path a config names. Checking
that the paths exist is :func:`blindspot.config.check_paths`, run by ``blindspot check-config`` and by the
Snakefile unless ``check_paths: false``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

PathKind = Literal["file", "directory", "any", "model"]
HUB_ID_PATTERN = r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$"


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def path_problem(value: str, kind: PathKind, hub_id: str | None = None) -> str | None:
    """What is wrong with a configured path (None when it is fine)."""
    path = Path(value).expanduser()
    if kind == "directory" and not path.is_dir():
        return f"no such directory '{value}'"
    if kind == "file" and not path.is_file():
        return f"no such file '{value}'"
    if kind == "any" and not path.exists():
        return f"no such file or directory '{value}'"
    if kind == "model" and not path.is_dir():
        source = hub_id or (value if re.match(HUB_ID_PATTERN, value) else "ORG/NAME")
        return (
            f"no such model directory '{value}'; fetch it with: huggingface-cli download {source} --local-dir {value}"
        )
    return None
