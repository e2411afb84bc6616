"""Toy scenes: one large striped disc on a grey, lightly noisy background.

The stripes are sinusoidal with a 7 px period (half the 14 px vision patch) and phase-locked to the patch grid, so
a tiny vision tower sees them the same way in every patch. They alternate the disc's colour with a darker shade
of it: the colour survives heavy blur, the orientation does not (Gaussian blur erases a 7 px period from kernel 25
on). A disc, not a square: after heavy blur a square's outline would still hint at the stripe direction. For the
same reason the stripes fade to the mean shade over the disc's outer 1.5 periods: where a hard rim cuts through
stripes, the rim's brightness depends on their direction, a low-frequency cue that survives any blur (up to 7 grey
levels at k=25 and 2 at k=61 without the taper; with it at most 2 at k=25 and 1, rounding, from k=35 on).
"""

from __future__ import annotations

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (230, 210, 40),
}
COLOUR_NAMES = tuple(COLOURS)
ORIENTATIONS = ("horizontal", "vertical")
SIZE = 112
PERIOD = 7
STRIPES_ERASED_FROM_KERNEL = 25
"""Gaussian blur with OpenCV's default sigma erases the 7 px stripes from this kernel size on."""
TRAINED_BLUR_KERNELS = (25, 35, 43, 51, 61)
"""The blurs the toy models are trained on (stripe questions with random labels, colour questions with true
ones). With the clean image these are the blur levels whose behaviour the toy world plants; a ladder level at any
other kernel is not planted, and calibration reports it as such."""
RADIUS = 0.3
TAPER_PERIODS = 1.5


def draw_scene(rng: np.random.Generator, colour: str, orientation: str, size: int = SIZE) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 RGB scene. The disc centre jitters by a few pixels; the background is grey."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    jitter = rng.integers(-4, 5, size=2)
    cy, cx = size / 2 + jitter[0], size / 2 + jitter[1]
    radius = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    inside = radius <= RADIUS * size
    axis = yy if orientation == "horizontal" else xx  # horizontal stripes vary along y
    wave = np.cos(2 * np.pi * axis / PERIOD)  # phase-locked: a crest at every multiple of 7 px
    taper = np.clip((RADIUS * size - radius) / (TAPER_PERIODS * PERIOD), 0, 1)
    wave = 0.5 + 0.5 * wave * taper
    bright = np.array(COLOURS[colour], dtype=np.float32)
    dark = bright * 0.45
    disc = dark + (bright - dark) * wave[..., None]
    background = 128 + rng.normal(0, 6, size=(size, size, 1)).astype(np.float32)
    image = np.where(inside[..., None], disc, np.broadcast_to(background, (size, size, 3)))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
