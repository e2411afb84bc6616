"""Small shared helpers for the project's Zarr v3 stores."""

from __future__ import annotations

from typing import Any

import numpy as np


def write_array(group: Any, name: str, values: np.ndarray, dims: tuple[str, ...]) -> None:
    """Write a whole (small, coordinate-like) array with dimension names; text as Zarr v3 variable-length UTF-8."""
    dtype = str if values.dtype.kind == "U" else values.dtype
    group.create_array(name, shape=values.shape, dtype=dtype, dimension_names=dims)[...] = values
