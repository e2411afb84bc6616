"""Obfuscation families on one ladder interface.

A *condition* is one (family, level) pair. The blur ladder's level 0 is the clean working image itself; the other
families list only their obfuscated levels (1..n) and share blur level 0 as their clean reference.

- blur: ``cv2.GaussianBlur`` with kernel k and OpenCV's default sigma 0.15*k + 0.35 (absolute), or that sigma
  scaled to the image's shorter side (relative); in float32, rounded once (``precision: float``, the default), or
  on the 8-bit image (``uint8``: OpenCV's fixed-point path, whose 8-bit kernel weights pass about 1% of a fine
  pattern's contrast at any kernel, so a blur that should erase it leaves a faint, decodable trace);
- pixelate: area-downsample by a block size, nearest-upsample back;
- blank: one colour (the image's mean, or grey);
- noise: seeded uniform noise, independent of the image's content.

Every condition keeps the working image's exact height and width, so vision tokens line up across levels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from blindspot.config import BlurFamily, RenderConfig
from blindspot.contracts.conditions import Condition


def conditions(config: RenderConfig) -> list[Condition]:
    """The stored conditions, in store order: the blur ladder (level 0 = clean) then the other families."""
    out = [Condition("blur", level, float(k)) for level, k in enumerate(config.blur.kernels)]
    if config.pixelate.enabled:
        out += [Condition("pixelate", level, float(b)) for level, b in enumerate(config.pixelate.blocks, start=1)]
    if config.blank.enabled:
        out.append(Condition("blank", 1, 0.0))
    if config.noise.enabled:
        out.append(Condition("noise", 1, 0.0))
    return out


def opencv_default_sigma(kernel: int) -> float:
    """The sigma OpenCV uses for ``sigma=0``: 0.3*((k-1)*0.5 - 1) + 0.8 = 0.15*k + 0.35.

    For k <= 9 OpenCV blurs with fixed tables instead (k=9: 1/256 x [4, 13, 30, 51, 60, 51, 30, 13, 4], up to
    0.6 grey levels from the Gaussian of sigma 1.7), close to but not exactly this Gaussian;
    the blur ladder passes ``sigma=0`` so that it is exactly "OpenCV's default" for every kernel."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def blur_parameters(kernel: int, shorter_side: int, config: BlurFamily) -> tuple[int, float]:
    """(kernel size, sigma) actually applied. Absolute mode passes sigma 0 to OpenCV (its own default)."""
    if kernel == 1 or config.sigma_mode == "absolute":
        return kernel, 0.0
    sigma = opencv_default_sigma(kernel) * shorter_side / config.reference_side
    radius = max(1, math.ceil(3 * sigma))
    return 2 * radius + 1, sigma


def effective_sigma(kernel: int, sigma: float) -> float:
    return sigma if sigma > 0 else (0.0 if kernel == 1 else opencv_default_sigma(kernel))


def noise_image(height: int, width: int, seed: int, image_key: str) -> np.ndarray:
    """Uniform noise seeded by the run seed and the image's key: the same bytes whatever the render order."""
    rng = np.random.default_rng([seed, int(image_key[:16], 16)])
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def render_condition(
    clean: np.ndarray, condition: Condition, config: RenderConfig, seed: int, image_key: str, dst: np.ndarray
) -> float:
    """Render one condition of a working image into ``dst`` (same shape; may be a strided view).

    Returns the Gaussian sigma applied (0 where none)."""
    height, width = clean.shape[:2]
    if condition.family == "blur":
        kernel = int(condition.param)
        if kernel == 1:
            dst[...] = clean
            return 0.0
        ksize, sigma = blur_parameters(kernel, min(height, width), config.blur)
        if config.blur.precision == "uint8":
            cv2.GaussianBlur(clean, (ksize, ksize), sigma, dst=dst)
        else:
            blurred = cv2.GaussianBlur(clean.astype(np.float32), (ksize, ksize), sigma)
            np.clip(np.rint(blurred), 0, 255, out=blurred)
            dst[...] = blurred
        return effective_sigma(ksize, sigma)
    if condition.family == "pixelate":
        block = int(condition.param)
        small = cv2.resize(
            clean, (max(1, round(width / block)), max(1, round(height / block))), interpolation=cv2.INTER_AREA
        )
        cv2.resize(small, (width, height), dst=dst, interpolation=cv2.INTER_NEAREST)
        return 0.0
    if condition.family == "blank":
        if config.blank.fill == "mean":
            dst[...] = np.rint(clean.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
        else:
            dst[...] = 128
        return 0.0
    if condition.family == "noise":
        dst[...] = noise_image(height, width, seed, image_key)
        return 0.0
    raise ValueError(f"unknown obfuscation family '{condition.family}'")


def render_all(
    clean: np.ndarray,
    conds: list[Condition],
    config: RenderConfig,
    seed: int,
    image_key: str,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All conditions of one working image: ``(n_conditions, H, W, 3)`` uint8 and the sigmas applied.

    With ``out`` (shape ``(n_conditions, >=H, >=W, 3)``, e.g. a padded store chunk) the conditions are rendered
    into its top-left corner and the returned stack is that view."""
    height, width = clean.shape[:2]
    if out is None:
        out = np.empty((len(conds), height, width, 3), dtype=np.uint8)
    stack = out[:, :height, :width]
    sigmas = np.zeros(len(conds), dtype=np.float32)
    for index, condition in enumerate(conds):
        sigmas[index] = render_condition(clean, condition, config, seed, image_key, stack[index])
    return stack, sigmas
