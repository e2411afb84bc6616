"""Toy scenes: a frame of one colour crossed by sinusoidal stripes whose period sets where blur erases them.

The "object" fills the frame: a uniform colour (jittered by a few grey levels per image), modulated by stripes
``colour * (1 + ALPHA * cos(2 pi t / period))`` along y (horizontal stripes) or x (vertical ones). The colour
survives any blur; the stripes survive a Gaussian blur up to a kernel set by their period, and from the next
ladder kernel on the blurred image is *exactly* the uniform colour, the same bytes for both orientations, so
nothing in the pixels can tell the orientation (``tests/test_toy_scenes.py`` checks every period at every kernel).

Three details make the erasure exact rather than approximate:

- The period divides ``2 * (SIZE - 1)`` and the stripes have a crest (or trough) at pixel 0, so the pattern is
  mirror-symmetric about the first and the last pixel: OpenCV's reflect-101 border extends it seamlessly and the
  border adds no low-frequency trace (an arbitrary period leaves one that survives any blur).
- Nothing else varies in the frame: no edge, no noise. Blurring a uniform field gives the same field, so the
  stripes' residue (below half a grey level at the erasing kernel, rounding included) rounds away everywhere.
- The blur is computed in floating point (``render.blur.precision: float``). OpenCV's 8-bit path uses 8-bit
  fixed-point kernel weights whose rounding lets about 1% of the contrast of any fine pattern through at every
  kernel (stripes of amplitude 125 keep +-2 grey levels even at k=61).

``ERASING_PERIODS`` gives, for each kernel of the paper's ladder, the stripe period that survives the ladder
kernel before it (with the largest contrast left there) and is erased from it on. So every ladder level erases
some items' cue: a bug that drops, shifts or reorders a level changes what some items measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from blindspot.config import BlurFamily, RenderConfig
from blindspot.contracts.conditions import Condition
from blindspot.stages.render.families import render_condition

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (124, 26, 26),
    "green": (30, 120, 40),
    "blue": (36, 50, 124),
    "yellow": (122, 114, 28),
}
"""Mid-tone colours: each has a channel near 128, which leaves room for stripes of amplitude ~118 around it
without clipping (``(124 + COLOUR_JITTER) * (1 + ALPHA) < 255``)."""
COLOUR_NAMES = tuple(COLOURS)
ORIENTATIONS = ("horizontal", "vertical")
SIZE = 112
ALPHA = 0.95
"""Stripe amplitude as a share of each colour channel."""
COLOUR_JITTER = 6
"""Each image's colour is shifted by up to this many grey levels per channel (so no two scenes share bytes)."""
LADDER = (1, 9, 17, 25, 35, 43, 51, 61)
"""The paper's blur kernels (OpenCV's default sigma 0.15 k + 0.35), whose erasure this world plants."""
HALF_PERIODS: dict[int, int] = {9: 76, 17: 44, 25: 30, 35: 22, 43: 18, 51: 15, 61: 13}
"""Erasing kernel -> the number of half periods across the frame, m: the period is ``2 * (SIZE - 1) / m``.
Chosen (largest contrast before, residue below 0.35 grey levels at the erasing kernel) from a sweep of m."""


@dataclass(frozen=True)
class Stripes:
    """A stripe period and the ladder kernel from which blur erases it."""

    half_periods: int
    erased_from: int

    @property
    def period(self) -> float:
        return 2 * (SIZE - 1) / self.half_periods

    @property
    def survives_through(self) -> int:
        """The largest ladder kernel that keeps the stripes."""
        return LADDER[LADDER.index(self.erased_from) - 1]

    def visible(self, kernel: int) -> bool | None:
        """Whether a Gaussian blur of this kernel (OpenCV's default sigma) keeps the stripes: True up to
        ``survives_through``, False from ``erased_from`` on, None (not planted) for a kernel between the two."""
        if kernel <= self.survives_through:
            return True
        if kernel >= self.erased_from:
            return False
        return None


ERASING_PERIODS: dict[int, Stripes] = {k: Stripes(m, k) for k, m in HALF_PERIODS.items()}


def draw_scene(
    rng: np.random.Generator, colour: str, orientation: str, stripes: Stripes, size: int = SIZE
) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 RGB scene: the jittered colour with stripes of ``stripes.period``."""
    if size != SIZE:
        raise ValueError(f"toy scenes are {SIZE} px square (the stripe periods divide 2 * (SIZE - 1)); got {size}")
    base = np.array(COLOURS[colour], dtype=np.float64) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
    sign = 1.0 if rng.random() < 0.5 else -1.0  # a crest or a trough at pixel 0: both are mirror-symmetric there
    wave = sign * np.cos(2 * np.pi * np.arange(size) / stripes.period)
    field = wave[:, None] * np.ones((1, size)) if orientation == "horizontal" else np.ones((size, 1)) * wave[None, :]
    image = base[None, None, :] * (1.0 + ALPHA * field[..., None])
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def blur_ladder(scene: np.ndarray, precision: Literal["float", "uint8"] = "float") -> list[np.ndarray]:
    """The scene at every kernel of ``LADDER`` through the render stage's own blur (OpenCV's default sigma): what
    the pipeline shows the model. ``precision`` as ``render.blur.precision``."""
    config = RenderConfig(blur=BlurFamily(precision=precision))
    out = []
    for kernel in LADDER:
        dst = np.empty_like(scene)
        render_condition(scene, Condition("blur", 0, float(kernel)), config, 0, "0" * 16, dst)
        out.append(dst)
    return out
