"""The lens and the attention knockout against their baselines, in one run on the same toy items.

    python bench/lens.py [--items 200] [--model qwen_reader] [--batch-size 32]

1. **Lens.** The extract stage with attention off (extract alone), then with the attention rows recorded in the same
   pass, then the lens stage on that store. Prints each time and the lens's cost over extract alone: attention
   recording plus the lens stage, as a share of extract alone (target: <= 15%).
2. **Knockout.** The knockout stage's sweep (replay from each window's first layer, the layers below run once per
   batch) against a whole forward pass per window and position set, on the same items, windows and positions.
   Prints both, the speed-up (target: >= 1.5x) and the largest difference in the knocked gold margin.

On the toy models a forward pass is cheap next to the stage's bookkeeping (bootstrap intervals, tables), so the
lens's share here is an upper bound; ``bench/scale.py`` measures both at the published shapes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _cli as cli  # bench/_cli.py
import torch
from extract import prepare  # bench/extract.py: stage and render a toy benchmark

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ExtractConfig, KnockoutConfig, LensConfig, ModelConfig, PromptConfig
from blindspot.contracts.conditions import Condition
from blindspot.models.attention import Knockout, attention_control
from blindspot.models.inference import Request, encode_batch
from blindspot.models.job import ModelJob
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.replay import option_logprobs
from blindspot.prompts import option_labels
from blindspot.stages.extract import extract_benchmark
from blindspot.stages.knockout import gold_margin, knockout_batch, query_positions, windows
from blindspot.stages.lens import lens_benchmark
from blindspot.stages.slices import LensSlice
from blindspot.stages.table import STAGES
from blindspot.toy.checkpoints import CHECKPOINTS


def timed_extract(
    loaded: LoadedModel, model: ModelConfig, attention: bool, items: Path, render: Path, out: Path
) -> float:
    settings = ExtractConfig.model_validate({"levels": ["blur/0", "blur/-1"], "attention": attention})
    start = time.perf_counter()
    extract_benchmark("m", "toy", model, settings, PromptConfig(), items, render, out, scoring=GENERIC_SCORING,
                      loaded=loaded, progress=False)  # fmt: skip
    return time.perf_counter() - start


def lens_times(loaded: LoadedModel, model: ModelConfig, items: Path, render: Path, tmp: Path, bootstrap: int) -> None:
    timed_extract(loaded, model, False, items, render, tmp / "warm.zarr")  # warm-up
    alone = timed_extract(loaded, model, False, items, render, tmp / "alone.zarr")
    looking = timed_extract(loaded, model, True, items, render, tmp / "looking.zarr")
    config = LensSlice(output_version=STAGES["lens"].version, model=model, lens=LensConfig(bootstrap=bootstrap),
                       prior_field="prior_answer", seed=0)  # fmt: skip
    outputs = {name: tmp / f"lens.{name}.parquet" for name in ("lens", "per_item", "sinks")}
    start = time.perf_counter()
    lens_benchmark("m", "toy", config, tmp / "looking.zarr", items, outputs, loaded=loaded)
    lens_s = time.perf_counter() - start
    cost = (looking - alone + lens_s) / alone
    print(f"extract alone {alone:7.2f} s; with attention {looking:7.2f} s ({looking / alone - 1:+.1%}); "
          f"lens stage {lens_s:6.2f} s")  # fmt: skip
    print(f"lens cost over extract alone: {cost:+.1%} (target <= 15%)")


def whole_forward(job: ModelJob, items: list[int], condition: Condition, settings: KnockoutConfig) -> list[float]:
    """The baseline: one whole forward pass per window and position set."""
    loaded = job.loaded
    labels = [tuple(option_labels(job.items[i]["answer_type"], job.items[i]["options"]) or ()) for i in items]
    index = job.store.condition_index(condition.family, condition.level)
    requests = [Request(job.prompts.get(i, True), tuple(job.images(i, index, job.levels(i))), labels[k])
                for k, i in enumerate(items)]  # fmt: skip
    inputs = encode_batch(loaded, requests)
    image = loaded.family.image_positions(loaded.model, inputs["input_ids"])
    questions = [job.items[i]["question"] for i in items]
    margins = []
    for position in settings.positions:
        queries = query_positions(loaded, inputs, image, questions, position)
        for window in windows(settings.windows, len(loaded.layers)):
            knock = Knockout(window.layers, queries, image)
            with attention_control(loaded.layers, knockout=knock), torch.inference_mode():
                logits = loaded.model(**inputs, use_cache=False, logits_to_keep=1).logits[:, -1].float()
            lps = option_logprobs(loaded, logits, labels)
            margins += [gold_margin(lp, job.items[i]["answer"]) for lp, i in zip(lps, items, strict=True)]
    return margins


def knockout_times(job: ModelJob, items: list[int], batch_size: int) -> None:
    settings = KnockoutConfig.model_validate({"windows": [1], "positions": ["last", "text"]})
    condition = Condition("blur", 0, 1.0)  # the clean view (kernel 1)
    batches = [items[s : s + batch_size] for s in range(0, len(items), batch_size)]
    knockout_batch(job, batches[0], [condition], settings)  # warm-up
    start = time.perf_counter()
    rows = [r for batch in batches for r in knockout_batch(job, batch, [condition], settings)]
    replay_s = time.perf_counter() - start
    start = time.perf_counter()
    margins = [m for batch in batches for m in whole_forward(job, batch, condition, settings)]
    full_s = time.perf_counter() - start
    ours = [r["knocked_margin"] for r in rows]
    n_windows = len(windows(settings.windows, len(job.loaded.layers)))
    # rows come batch by batch, position by position, window by window, item by item: the baseline's order
    largest = max(abs(a - b) for a, b in zip(ours, margins, strict=True))
    print(f"knockout: {len(items)} items x 2 position sets x {n_windows} windows = {len(rows)} knockouts")
    print(f"whole forward per window: {full_s:7.2f} s")
    print(f"replay from the window:   {replay_s:7.2f} s")
    print(f"speed-up: {full_s / replay_s:.2f}x (target >= 1.5x); largest |knocked margin difference|: {largest:.2e}")


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--model", default="qwen_reader")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    if args.smoke:
        args.items, args.batch_size, args.bootstrap = 12, 4, 20
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        items_path, render_path = prepare(tmp, args.items)
        model = ModelConfig(adapter="qwen2_5_vl", path=str(CHECKPOINTS / args.model), batch_size=args.batch_size)
        loaded = load_model(model)
        print(f"{args.model}, {args.items} toy items, 2 levels, on {loaded.device}")
        lens_times(loaded, model, items_path, render_path, tmp, args.bootstrap)
        job = ModelJob.open("knockout", args.model, "toy", model, PromptConfig(), {}, items_path, render_path,
                            tmp / "k.parquet", loaded=loaded, scoring=GENERIC_SCORING, progress=False)  # fmt: skip
        items = [i for i, r in enumerate(job.items) if option_labels(r["answer_type"], r["options"])]
        knockout_times(job, items, args.batch_size)


if __name__ == "__main__":
    main()
