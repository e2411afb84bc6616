"""The canonical working size: every image is resized once, before any obfuscation."""

from __future__ import annotations

import cv2
import numpy as np

from blindspot.config import ResizeConfig


def working_size(height: int, width: int, config: ResizeConfig) -> tuple[int, int]:
    """(height, width) of the working image: longest side scaled to ``longest_side`` (never enlarged unless
    ``upscale``), both sides rounded to the nearest multiple of ``multiple_of`` (at least one multiple)."""
    scale = config.longest_side / max(height, width)
    if scale > 1 and not config.upscale:
        scale = 1.0
    m = config.multiple_of

    def snap(side: int) -> int:
        return max(m, round(side * scale / m) * m)

    return snap(height), snap(width)


def resize_to_working(rgb: np.ndarray, config: ResizeConfig) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 image to its working size (area filter down, cubic up)."""
    height, width = rgb.shape[:2]
    new_h, new_w = working_size(height, width, config)
    if (new_h, new_w) == (height, width):
        return rgb.copy()
    shrinking = new_h * new_w < height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
