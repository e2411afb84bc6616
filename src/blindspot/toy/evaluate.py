"""Quick acceptance checks of a toy model on fresh items, through the predict stage's own inference path.

Accuracy per kind and view, and for conflict items the share that follows the hint versus the image. The views:
clean; ``last_kept`` and ``first_erased``, the blur kernels just before and at the one that erases the item's
stripes (for colour questions, whose cue survives every blur: k=51 and k=61); grey, noise and no image. The full
measurement is the pipeline itself (decay + ``blindspot calibrate``); this is the fast check ``toy-train`` records
in each checkpoint's training.json.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blindspot.answers import parse_choice
from blindspot.config import ModelConfig
from blindspot.models.inference import Request, generate_batch
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.prompts import render_prompt
from blindspot.prompts import question_text
from blindspot.toy.items import KINDS, STRIPE_KINDS, ToyItem, make_item
from blindspot.toy.scenes import LADDER, blur_ladder, draw_scene

VIEWS = ("clean", "last_kept", "first_erased", "grey", "noise", "none")
CONFIDENT_NATS = 1.0
"""The decay stage's default margin threshold."""


def _view(ladder: list[np.ndarray], item: ToyItem, view: str, rng: np.random.Generator) -> np.ndarray | None:
    image = ladder[0]
    if view == "clean":
        return image
    if view in ("last_kept", "first_erased"):
        stripes = item.kind in STRIPE_KINDS
        kernel = item.stripes.erased_from if stripes else LADDER[-1]
        index = LADDER.index(kernel) - int(view == "last_kept")
        return ladder[index]
    if view == "grey":
        return np.full_like(image, 128)
    if view == "noise":
        return rng.integers(0, 256, size=image.shape, dtype=np.uint8)
    return None


def evaluate_toy_model(
    model: str | LoadedModel,
    family: str,
    n_per_kind: int = 200,
    seed: int = 1234,
    batch_size: int = 64,
    prompt_version: str = "v1",
) -> dict[str, Any]:
    """{kind: {view: accuracy}}, conflict hint-following rates, and per kind the share of *confident* answers
    (top option ahead of the runner-up by at least ``CONFIDENT_NATS``): without evidence it should be near 0."""
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(ModelConfig.model_validate({"adapter": family, "path": str(model)}))
    )
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {}
    for kind in KINDS:
        items = [make_item(kind, rng, hint_matches=False if kind == "conflict" else None) for _ in range(n_per_kind)]
        scenes = [blur_ladder(draw_scene(rng, it.colour, it.orientation, it.stripes)) for it in items]
        results[kind] = {}
        for view in VIEWS:
            answers = []
            margins = []
            for start in range(0, len(items), batch_size):
                chunk = list(range(start, min(start + batch_size, len(items))))
                requests = []
                for i in chunk:
                    image = _view(scenes[i], items[i], view, rng)
                    text = question_text(items[i].question, list(items[i].options), "multiple_choice", prompt_version)
                    prompt = render_prompt(loaded.processor, text, int(image is not None))
                    labels = tuple("ABCD"[: len(items[i].options)])
                    requests.append(Request(prompt, () if image is None else (image,), labels))
                for i, response in zip(chunk, generate_batch(loaded, requests, max_new_tokens=1), strict=True):
                    answers.append(parse_choice(response.text, list(items[i].options)).answer)
                    assert response.option_logprobs is not None  # every request names its option labels
                    top, second = sorted(response.option_logprobs.values(), reverse=True)[:2]
                    margins.append(top - second)
            results.setdefault(f"{kind}_confident", {})[view] = float(np.mean(np.array(margins) >= CONFIDENT_NATS))
            gold = [it.answer for it in items]
            results[kind][view] = float(np.mean([a == g for a, g in zip(answers, gold, strict=True)]))
            if kind == "conflict":
                prior = [it.prior for it in items]
                results["conflict_follows_hint"] = results.get("conflict_follows_hint", {})
                results["conflict_follows_hint"][view] = float(
                    np.mean([a == p for a, p in zip(answers, prior, strict=True)])
                )
    return results


def format_results(results: dict[str, Any]) -> str:
    lines = [f"{'':22s}" + "".join(f"{v:>8s}" for v in VIEWS)]
    for key, row in results.items():
        lines.append(f"{key:22s}" + "".join(f"{row[v]:8.3f}" for v in VIEWS))
    return "\n".join(lines)
