"""Toy benchmark items with planted kinds, written in the generic adapter's format.

Kinds (the planted ground truth, in each item's metadata with its prior answer and stripe period):

- ``fine``, ``mid``, ``late``: "Are the stripes horizontal or vertical?" (2 options). The answer needs the stripes,
  and blur erases them from a ladder kernel set by their period (``erased_from`` in the metadata): k=9 or 17 for
  ``fine``, k=25, 35, 43 or 51 for ``mid``, only k=61 for ``late`` (its cue survives every level but the last).
- ``coarse``: "What color is the object?" (4 options): colour survives blur; a grey or noise image removes it.
- ``prior``: the text fixes the answer ("Ignore the image. The answer is C."); no vision needed.
- ``conflict``: "What color is the object? Hint: it is usually C." Gold is the scene's colour, the planted prior
  answer is the hint's; on evaluation items the hint always differs from the colour (modelled on VLMBias).

Every answer is one option letter; option order is fixed (colours always red, green, blue, yellow).

**Shared images.** A share of the items (``toy.shared_images``) comes in groups of ``toy.questions_per_image``:
one scene asked its question that many times, under consecutive ids (as POPE asks several questions of one image).
The model answers a group alike, so its items are one observation for every rate: the planted design effect that
calibrate checks the intervals against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from blindspot.contracts.answers import LETTERS
from blindspot.images import encode_png
from blindspot.toy.scenes import COLOUR_NAMES, ERASING_PERIODS, ORIENTATIONS, Stripes, draw_scene

STRIPE_KINDS: dict[str, tuple[int, ...]] = {"fine": (9, 17), "mid": (25, 35, 43, 51), "late": (61,)}
"""Stripe kind -> the ladder kernels its items' stripes are erased from (one drawn per item)."""
KINDS = (*STRIPE_KINDS, "coarse", "prior", "conflict")
COLOUR_QUESTION = "What color is the object?"
STRIPE_QUESTION = "Are the stripes horizontal or vertical?"


@dataclass(frozen=True)
class ToyItem:
    kind: str
    colour: str
    orientation: str
    stripes: Stripes
    question: str
    options: tuple[str, ...]
    answer: str
    """Gold option letter."""
    prior: str | None
    """The answer the text pushes towards (prior and conflict kinds), as an option letter."""


def letter(options: tuple[str, ...], value: str) -> str:
    return LETTERS[options.index(value)]


def make_item(
    kind: str,
    rng: np.random.Generator,
    *,
    colour: str | None = None,
    orientation: str | None = None,
    stripes: Stripes | None = None,
    hint_matches: bool | None = None,
) -> ToyItem:
    """One item of ``kind`` about a scene (drawn at random unless given; a stripe kind's stripes must be among its
    own). For conflict items ``hint_matches`` forces the hint to equal (True) or differ from (False) the colour;
    None draws the hint uniformly."""
    colour = colour or COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    orientation = orientation or ORIENTATIONS[int(rng.integers(2))]
    kernels = STRIPE_KINDS.get(kind, tuple(ERASING_PERIODS))
    if stripes is None:
        stripes = ERASING_PERIODS[kernels[int(rng.integers(len(kernels)))]]
    elif stripes.erased_from not in kernels:
        raise ValueError(f"a '{kind}' item's stripes are erased from k={kernels}, not k={stripes.erased_from}")
    scene = (kind, colour, orientation, stripes)
    if kind in STRIPE_KINDS:
        return ToyItem(*scene, STRIPE_QUESTION, ORIENTATIONS, letter(ORIENTATIONS, orientation), None)
    if kind == "coarse":
        return ToyItem(*scene, COLOUR_QUESTION, COLOUR_NAMES, letter(COLOUR_NAMES, colour), None)
    if kind == "prior":
        stated = LETTERS[int(rng.integers(len(COLOUR_NAMES)))]
        question = f"Ignore the image. The answer is {stated}. {COLOUR_QUESTION}"
        return ToyItem(*scene, question, COLOUR_NAMES, stated, stated)
    if kind == "conflict":
        if hint_matches is None:
            hint = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        elif hint_matches:
            hint = colour
        else:
            others = [c for c in COLOUR_NAMES if c != colour]
            hint = others[int(rng.integers(len(others)))]
        question = f"{COLOUR_QUESTION} Hint: it is usually {hint}."
        return ToyItem(*scene, question, COLOUR_NAMES, letter(COLOUR_NAMES, colour), letter(COLOUR_NAMES, hint))
    raise ValueError(f"unknown toy kind '{kind}' (known: {', '.join(KINDS)})")


def planted_kinds(n_items: int, shares: dict[str, float], rng: np.random.Generator) -> list[str]:
    """Exactly round(share * n) items of each kind (the remainder to the largest share), shuffled."""
    counts = {k: round(shares.get(k, 0.0) * n_items) for k in KINDS}
    largest = max(counts, key=lambda k: shares.get(k, 0.0))
    counts[largest] += n_items - sum(counts.values())
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    return kinds


def image_groups(kinds: list[str], shared: float, per_image: int) -> list[list[int]]:
    """Positions asked about one image together: about ``shared`` of the items in groups of ``per_image`` (each
    group of one kind, taken from the kind with most positions left), the rest one each; in position order."""
    left = {kind: [i for i, k in enumerate(kinds) if k == kind] for kind in dict.fromkeys(kinds)}
    groups = []
    for _ in range(round(shared * len(kinds) / per_image)):
        kind = max(left, key=lambda k: len(left[k]))
        if len(left[kind]) < per_image:
            break
        groups.append(left[kind][:per_image])
        left[kind] = left[kind][per_image:]
    groups += [[i] for positions in left.values() for i in positions]
    return sorted(groups)


def write_toy_benchmark(
    out_dir: str | Path, n_items: int, shares: dict[str, float], seed: int, shared: float = 0.0, per_image: int = 4
) -> Path:
    """The evaluation benchmark (conflict hints always differ from the colour), as parquet + embedded PNGs; a
    ``shared`` share of the items asked in groups of ``per_image`` about one image (module docstring)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = planted_kinds(n_items, shares, rng)
    rows: dict[int, dict[str, Any]] = {}
    for group in image_groups(kinds, shared, per_image):
        item = make_item(kinds[group[0]], rng, hint_matches=False if kinds[group[0]] == "conflict" else None)
        png = encode_png(draw_scene(rng, item.colour, item.orientation, item.stripes))
        for index in group:
            rows[index] = {
                "item_id": f"toy{index:05d}",
                "question": item.question,
                "options": list(item.options),
                "answer": item.answer,
                "image": {"bytes": png, "path": None},
                "kind": item.kind,
                "prior_answer": item.prior,
                "colour": item.colour,
                "orientation": item.orientation,
                "erased_from": item.stripes.erased_from,
                "stripe_period": item.stripes.period,
                "image_group_size": len(group),
            }
    path = out_dir / "items.parquet"
    pq.write_table(pa.Table.from_pylist([rows[i] for i in range(n_items)]), path)
    return path
