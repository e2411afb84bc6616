"""The patch stage's layer sweep (replay from each layer) against patching each layer in a whole forward pass.

    python bench/patch.py [--items 48] [--model qwen_base] [--batch-size 16]

Both patch the same toy items, condition pairs (clean into the most-blurred level, and back), position sets
(image, last, all) and every layer index, with the committed toy model, in one run. Prints seconds for both, the
speed-up (target: >= 1.5x) and whether the results are identical (the same patched answers everywhere; the largest
difference in the patched logit difference).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _cli as cli  # bench/_cli.py
import torch
from extract import prepare  # bench/extract.py: stage and render a toy benchmark

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ModelConfig, PromptConfig
from blindspot.models.job import ModelJob
from blindspot.prompts import option_labels
from blindspot.stages.patch import parse_pairs, patch_batch
from blindspot.toy.checkpoints import CHECKPOINTS


def sweep(job: ModelJob, items: list[int], batch_size: int, method: str) -> tuple[float, list[dict]]:
    pairs = parse_pairs(job, ["blur/0->blur/-1", "blur/-1->blur/0"])
    rows: list[dict] = []
    start = time.perf_counter()
    for first in range(0, len(items), batch_size):
        rows += patch_batch(job, items[first : first + batch_size], pairs, ["image", "last", "all"], method)  # type: ignore[arg-type]
    return time.perf_counter() - start, rows


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--model", default="qwen_base")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    if args.smoke:
        args.items, args.batch_size = 3, 4
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        items_path, render_path = prepare(Path(tmp), args.items)
        adapter = "llava_next" if args.model.startswith("llava") else "qwen2_5_vl"
        model = ModelConfig(adapter=adapter, path=str(CHECKPOINTS / args.model), batch_size=args.batch_size)  # type: ignore[arg-type]
        job = ModelJob.open(
            "patch",
            args.model,
            "toy",
            model,
            PromptConfig(),
            {},
            items_path,
            render_path,
            Path(tmp) / "p.parquet",
            scoring=GENERIC_SCORING,
        )
        items = [i for i, r in enumerate(job.items) if option_labels(r["answer_type"], r["options"])]
        sweep(job, items[: args.batch_size], args.batch_size, "replay")  # warm-up
        replay_s, replayed = sweep(job, items, args.batch_size, "replay")
        full_s, full = sweep(job, items, args.batch_size, "full_forward")
    same_answers = all(a["patched_answer"] == b["patched_answer"] for a, b in zip(replayed, full, strict=True))
    largest = max(
        abs(a["ld_patched"] - b["ld_patched"])
        for a, b in zip(replayed, full, strict=True)
        if a["ld_patched"] is not None
    )
    n_layers = len(job.loaded.layers) + 1
    print(f"{len(items)} items x 2 pairs x 3 position sets x {n_layers} layer indices = {len(replayed)} patches")
    print(f"full forward per layer: {full_s:7.2f} s")
    print(f"replay from the layer:  {replay_s:7.2f} s")
    print(f"speed-up: {full_s / replay_s:.2f}x (target >= 1.5x)")
    print(f"identical patched answers: {same_answers}; largest |ld difference|: {largest:.2e}")


if __name__ == "__main__":
    main()
