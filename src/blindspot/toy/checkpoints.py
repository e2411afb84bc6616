"""The committed toy checkpoints and how ``blindspot toy-train`` (``make toy-models``) reproduces them.

Per architecture (committed: ``COMMITTED_FAMILIES``): ``{family}_base`` (trained from scratch; follows hints),
``{family}_donor_layer{j}`` (the base fine-tuned with only decoder layer j trainable, on random hints labelled
with the true colour: it learns to look, and the change is planted in layer j by construction) and
``{family}_donor_full`` (the same fine-tune with every parameter trainable: the swap stage must localise its
change without a planted answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from blindspot.toy.evaluate import evaluate_toy_model, format_results
from blindspot.toy.train import TrainSpec, train_toy_model

CHECKPOINTS = Path(__file__).parent / "checkpoints"
FAMILY_SHORT = {"qwen2_5_vl": "qwen", "llava_next": "llava"}
EVALUATION_ITEMS = 1000
"""Fresh items per kind for the acceptance evaluation recorded in training.json (the issue asks for >= 1,000)."""
COMMITTED_FAMILIES = ("qwen2_5_vl", "llava_next")
"""The families with committed checkpoints (each one's trio is calibrated: the Qwen2.5-VL trio by ``make demo``,
the LLaVA-NeXT trio by ``make demo-llava``; both in ``make test``). The LLaVA trio's weak spot: it reads the k=43
view of the mid period erased from k=51 unsurely on about a fifth of those items, so its per-item agreement sits
near the 0.98 target (0.980-0.993 on 600 items). Drawing mid questions more often (weight 2.0, not 1.2) made a base
confident on 0.74 of erased views, which breaks the random-label plan; that recipe was not kept."""
BASE_SETTINGS: dict[str, dict[str, Any]] = {
    "llava_next": {
        "clean_warmup": 0.15,
        "llava_patch": 28,
        "llava_vision_act": "relu",
        "steps": 3500,
        "clean_colour_share": 0.3,
        "kind_weights": {"fine": 0.4, "mid": 1.2, "late": 1.0, "coarse": 1.0, "prior": 0.6, "conflict": 1.2},
    }
}
"""Per-family departures from the base recipe. The tiny LLaVA-NeXT with CLIP's defaults (14-pixel patches, a
quick_gelu MLP) never learned the faintest stripes: after 2,000 steps it answered clean stripe questions right but
unsure and the faint ones near chance, with or without a clean warm-up (loss flat near 0.35 from step 500), and a
run with 28-pixel patches sat on the same plateau halfway through (0.39 at step 1,000). A ReLU
vision MLP did learn them (rectification responds to a faint zero-mean pattern in proportion to its amplitude, a
smooth activation only to its square). The clean warm-up (15% of the steps on clean, always-informative stripe
views) finds the stripe features before random-labelled erased views are mixed in, and 28-pixel patches (4 tokens
per 56-pixel crop, like Qwen's 2x2 merge of 14-pixel patches) halve the step time. With those alone (3,000 steps)
the base read clean colour at only 0.981 (0.95 confident; 1.0 on blurred views: the stripes' high frequencies
disturb the colour read through 28-pixel patches) and the faintest late stripes confidently on only 0.895, and its
layer donor followed the image on 0.92 of clean conflict items. Three more departures fixed both: 30% of the
informative colour questions shown the clean view (``clean_colour_share``; a uniform pick over the ladder shows it
one time in eight), late stripes weighted up (1.0, from 0.6; fine down to 0.4, learned first anyway) and 3,500
steps."""
DONOR_LAYER = 2
"""The layer donor's only trainable decoder layer: interior (the models have 4), so a swap or patch that is off by
one layer in either direction misses it."""
DONOR_STEPS = 400
LAYER_DONOR_STEPS = 1000
"""One trainable layer learns more slowly: 400 steps left the LLaVA layer donor at 0.77 on conflict items."""


DONOR_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "llava_next": {
        "layer": {"steps": 2500, "clean_colour_share": 0.3},
        "full": {"steps": 1200, "clean_colour_share": 0.3},
    }
}
"""Per-family donor departures: the LLaVA-NeXT donors learn to look more slowly (at 1,000 and 400 steps they
followed the image on 0.65 and 0.92 of clean conflict items), and see clean views for colour as the base does."""


READ_LAYER = 1
"""The reader's planted reading layer: only the last prompt token attends to the image, and only in this decoder
layer (``TrainSpec.read_layer``), so the answer can emerge at residual point ``READ_LAYER + 1`` at the earliest."""
OVERRIDE_LAYER = 2
"""The overruled model's only trainable decoder layer: it learns to follow the hint over the image the reader
reads, so on conflict items the prior overtakes the visual answer at residual point ``OVERRIDE_LAYER + 1``."""
LENS_FAMILIES = ("qwen2_5_vl",)
"""The families with the lens pair (reader, overruled) committed; ``make demo`` calibrates it."""


OVERRIDE_STEPS = 3000
"""Following a hint takes a lookup (the hint's colour word, then the option that names it) in one layer: 1,000 steps
left the overruled model on the hint for half of the conflict items."""
READER_SETTINGS: dict[str, Any] = {"clean_warmup": 0.15, "steps": 3000}
"""The reader reads the image through one attention read of one token: with the base recipe (2,000 steps, no
warm-up) it learned colour but left every stripe question at chance, and its attention on stripe scenes could not
tell erased stripes from visible ones. A clean warm-up (stripe questions always informative and clean for the
first 15% of the steps) and 3,000 steps."""


def lens_specs(family: str) -> dict[str, tuple[TrainSpec, str | None]]:
    """The lens pair: ``{short}_reader`` (trained from scratch to look, reading the image only in ``READ_LAYER``,
    its attention to the image falling where the view carries no cue) and ``{short}_overruled`` (the reader with
    only ``OVERRIDE_LAYER`` fine-tuned to follow hints: where the image is read and where it is overruled are both
    known)."""
    short = FAMILY_SHORT[family]
    reader = f"{short}_reader"
    planted = {"read_layer": READ_LAYER, "look_when_informative": True}
    return {
        reader: (TrainSpec(**{"family": family, "mode": "donor", "seed": 3, **planted, **READER_SETTINGS}), None),
        f"{short}_overruled": (
            TrainSpec(
                family=family,  # type: ignore[arg-type]
                mode="base",
                steps=OVERRIDE_STEPS,
                seed=4,
                trainable_layers=(OVERRIDE_LAYER,),
                hint_match_rate=0.0,  # every hint contradicts the colour: layer 2 learns to overrule what layer 1 read
                **planted,  # type: ignore[arg-type]
            ),
            reader,
        ),
    }


def specs(family: str, donor_layer: int = DONOR_LAYER) -> dict[str, tuple[TrainSpec, str | None]]:
    """name -> (spec, name of the checkpoint it starts from): the trio, then the lens pair where committed."""
    short = FAMILY_SHORT[family]
    base = f"{short}_base"
    lens = lens_specs(family) if family in LENS_FAMILIES else {}
    return lens | {
        base: (TrainSpec(family=family, **BASE_SETTINGS.get(family, {})), None),  # type: ignore[arg-type]
        f"{short}_donor_layer{donor_layer}": (
            TrainSpec(
                **{
                    "family": family,
                    "mode": "donor",
                    "steps": LAYER_DONOR_STEPS,
                    "seed": 1,
                    "trainable_layers": (donor_layer,),
                    **DONOR_SETTINGS.get(family, {}).get("layer", {}),
                }
            ),
            base,
        ),
        f"{short}_donor_full": (
            TrainSpec(
                **{
                    "family": family,
                    "mode": "donor",
                    "steps": DONOR_STEPS,
                    "lr": 1e-3,
                    "seed": 2,
                    **DONOR_SETTINGS.get(family, {}).get("full", {}),
                }
            ),
            base,
        ),
    }


def train_all(
    out: str | Path, families: list[str], donor_layer: int = DONOR_LAYER, only: list[str] | None = None
) -> None:
    """Train the toy checkpoints into ``out`` (deterministic given torch build and thread count). ``only`` names a
    subset; their parents must already be in ``out``."""
    out = Path(out)
    torch.set_num_threads(2)  # the committed checkpoints were trained with 2 threads; see README
    for family in families:
        for name, (spec, parent) in specs(family, donor_layer).items():
            if only and name not in only:
                continue
            record = train_toy_model(spec, out / name, init_from=out / parent if parent else None)
            print(f"{name}: {record['train_seconds']} s, loss {record['final_loss']:.3f}")
            evaluate_checkpoint(out / name, family)


def evaluate_checkpoint(folder: Path, family: str, n_per_kind: int = EVALUATION_ITEMS) -> dict:
    """Evaluate a checkpoint on fresh items and record the result in its training.json."""
    record = json.loads((folder / "training.json").read_text())
    version = record["spec"].get("prompt_version", "v1")  # checkpoints trained before the field existed: v1
    record["evaluation"] = evaluate_toy_model(str(folder), family, n_per_kind=n_per_kind, prompt_version=version)
    record["evaluation_items_per_kind"] = n_per_kind
    (folder / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{folder.name}: evaluation on {n_per_kind} fresh items per kind")
    print(format_results(record["evaluation"]))
    return record
