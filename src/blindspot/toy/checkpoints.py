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

import torch

from blindspot.toy.evaluate import evaluate_toy_model, format_results
from blindspot.toy.train import TrainSpec, train_toy_model

CHECKPOINTS = Path(__file__).parent / "checkpoints"
FAMILY_SHORT = {"qwen2_5_vl": "qwen", "llava_next": "llava"}
EVALUATION_ITEMS = 1000
"""Fresh items per kind for the acceptance evaluation recorded in training.json (the issue asks for >= 1,000)."""
COMMITTED_FAMILIES = ("qwen2_5_vl",)
"""The families with committed checkpoints. The LLaVA-NeXT recipe does not yet reach the plan on the stripe world:
at 2,000 steps (30% curriculum) its base answered clean stripe questions right but unsure (confident on 0.55 of
them) and the faintest kept stripes at 0.52-0.80; a 3,000-step run with a 50% curriculum had not learned even the
clean stripes by step 2,000 (loss flat at 0.40). ``blindspot toy-train --family llava_next`` still trains it."""
DONOR_LAYER = 2
"""The layer donor's only trainable decoder layer: interior (the models have 4), so a swap or patch that is off by
one layer in either direction misses it."""
DONOR_STEPS = 400
LAYER_DONOR_STEPS = 1000
"""One trainable layer learns more slowly: 400 steps left the LLaVA layer donor at 0.77 on conflict items."""


def specs(family: str, donor_layer: int = DONOR_LAYER) -> dict[str, tuple[TrainSpec, str | None]]:
    """name -> (spec, name of the checkpoint it starts from)."""
    short = FAMILY_SHORT[family]
    base = f"{short}_base"
    return {
        base: (TrainSpec(family=family), None),  # type: ignore[arg-type]
        f"{short}_donor_layer{donor_layer}": (
            TrainSpec(family=family, mode="donor", steps=LAYER_DONOR_STEPS, seed=1, trainable_layers=(donor_layer,)),  # type: ignore[arg-type]
            base,
        ),
        f"{short}_donor_full": (
            TrainSpec(family=family, mode="donor", steps=DONOR_STEPS, lr=1e-3, seed=2),  # type: ignore[arg-type]
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
