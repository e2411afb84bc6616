"""Toy benchmark items with planted kinds, written in the generic adapter's format.

Kinds (the planted ground truth, in each item's metadata with its prior answer):

- ``fine``: "Are the stripes horizontal or vertical?" (2 options): needs fine detail; blur erases it.
- ``coarse``: "What color is the object?" (4 options): colour survives blur; a grey or noise image removes it.
- ``prior``: the text fixes the answer ("Ignore the image. The answer is C."); no vision needed.
- ``conflict``: "What color is the object? Hint: it is usually C." Gold is the disc's colour, the planted prior
  answer is the hint's; on evaluation items the hint always differs from the colour (modelled on VLMBias).

Every answer is one option letter; option order is fixed (colours always red, green, blue, yellow).
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
from blindspot.toy.scenes import COLOUR_NAMES, ORIENTATIONS, draw_scene

KINDS = ("fine", "coarse", "prior", "conflict")
COLOUR_QUESTION = "What color is the object?"
STRIPE_QUESTION = "Are the stripes horizontal or vertical?"


@dataclass(frozen=True)
class ToyItem:
    kind: str
    colour: str
    orientation: str
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
    hint_matches: bool | None = None,
) -> ToyItem:
    """One item of ``kind`` about a scene (drawn at random unless given). For conflict items ``hint_matches``
    forces the hint to equal (True) or differ from (False) the disc's colour; None draws the hint uniformly."""
    colour = colour or COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    orientation = orientation or ORIENTATIONS[int(rng.integers(2))]
    if kind == "fine":
        return ToyItem(
            kind, colour, orientation, STRIPE_QUESTION, ORIENTATIONS, letter(ORIENTATIONS, orientation), None
        )
    if kind == "coarse":
        return ToyItem(kind, colour, orientation, COLOUR_QUESTION, COLOUR_NAMES, letter(COLOUR_NAMES, colour), None)
    if kind == "prior":
        stated = LETTERS[int(rng.integers(len(COLOUR_NAMES)))]
        question = f"Ignore the image. The answer is {stated}. {COLOUR_QUESTION}"
        return ToyItem(kind, colour, orientation, question, COLOUR_NAMES, stated, stated)
    if kind == "conflict":
        if hint_matches is None:
            hint = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        elif hint_matches:
            hint = colour
        else:
            others = [c for c in COLOUR_NAMES if c != colour]
            hint = others[int(rng.integers(len(others)))]
        question = f"{COLOUR_QUESTION} Hint: it is usually {hint}."
        return ToyItem(
            kind, colour, orientation, question, COLOUR_NAMES, letter(COLOUR_NAMES, colour), letter(COLOUR_NAMES, hint)
        )
    raise ValueError(f"unknown toy kind '{kind}' (known: {', '.join(KINDS)})")


def planted_kinds(n_items: int, shares: dict[str, float], rng: np.random.Generator) -> list[str]:
    """Exactly round(share * n) items of each kind (the remainder to the largest share), shuffled."""
    counts = {k: round(shares.get(k, 0.0) * n_items) for k in KINDS}
    largest = max(counts, key=lambda k: shares.get(k, 0.0))
    counts[largest] += n_items - sum(counts.values())
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    return kinds


def write_toy_benchmark(out_dir: str | Path, n_items: int, shares: dict[str, float], seed: int) -> Path:
    """The evaluation benchmark (conflict hints always differ from the colour), as parquet + embedded PNGs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for index, kind in enumerate(planted_kinds(n_items, shares, rng)):
        item = make_item(kind, rng, hint_matches=False if kind == "conflict" else None)
        png = encode_png(draw_scene(rng, item.colour, item.orientation))
        rows.append(
            {
                "item_id": f"toy{index:05d}",
                "question": item.question,
                "options": list(item.options),
                "answer": item.answer,
                "image": {"bytes": png, "path": None},
                "kind": item.kind,
                "prior_answer": item.prior,
                "colour": item.colour,
                "orientation": item.orientation,
            }
        )
    path = out_dir / "items.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path
