"""Extract-stage overhead against a bare forward loop, and its peak memory at N and 10N items.

    python bench/extract.py [--items 40]

Both run the same tiny Qwen2.5-VL over the same toy items and levels in the same batches; the bare loop only calls
the model (no hooks, no store). Prints seconds for both and the overhead (target: <= 10%). Then it runs the extract
command in fresh processes on N and 10N items and prints each one's peak RSS (target: within 10% of each other:
the stage streams, so memory does not grow with the number of items).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _cli as cli  # bench/_cli.py
import polars as pl
import torch

from blindspot.benchmarks.generic import GenericBenchmark
from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ExtractConfig, ModelConfig, PromptConfig, RenderConfig
from blindspot.models.inference import Request, encode_batch
from blindspot.models.loading import load_model
from blindspot.models.prompts import render_prompt
from blindspot.prompts import question_text
from blindspot.stages.extract import extract_benchmark, resolve_levels
from blindspot.stages.render.run import render_benchmark
from blindspot.stages.staging import stage_benchmark, staged_paths
from blindspot.stages.table import STAGES
from blindspot.store.provenance import canonical_json
from blindspot.store.render import RenderStore
from blindspot.toy.checkpoints import CHECKPOINTS
from blindspot.toy.items import write_toy_benchmark

SHARES = {"fine": 0.3, "coarse": 0.3, "prior": 0.2, "conflict": 0.2}


def prepare(root: Path, n: int) -> tuple[Path, Path]:
    path = write_toy_benchmark(root / "src", n, SHARES, seed=0)
    config = GenericBenchmark(
        path=str(path), answer_type="multiple_choice", columns={"id": "item_id", "options": "options"}
    )
    stage_benchmark("toy", config, staged_paths(root / "staged"))
    render = RenderConfig.model_validate({"resize": {"longest_side": 112}, "pixelate": {"enabled": False}})
    render_benchmark(root / "staged" / "images.parquet", render, 0, root / "toy.zarr", workers=1, progress=False)
    return root / "staged" / "items.parquet", root / "toy.zarr"


@torch.inference_mode()
def bare_loop(model: ModelConfig, items_path: Path, render_path: Path, levels: list[str]) -> float:
    loaded = load_model(model)
    items = pl.read_parquet(items_path).to_dicts()
    store = RenderStore(render_path)
    start = time.perf_counter()
    for key in levels:
        family, _, level = key.partition("/")
        index = store.condition_index(family, int(level))
        for s in range(0, len(items), model.batch_size):
            batch = items[s : s + model.batch_size]
            requests = [
                Request(
                    render_prompt(
                        loaded.processor, question_text(i["question"], i["options"], i["answer_type"], "v1"), 1
                    ),
                    (store.levels(i["image_keys"][0])[index],),
                    None,
                )
                for i in batch
            ]
            loaded.model(**encode_batch(loaded, requests), logits_to_keep=1)
    return time.perf_counter() - start


def peak_rss_mib(model: ModelConfig, items_path: Path, render_path: Path, out: Path) -> float:
    stage = STAGES["extract"]
    slice_json = canonical_json(
        stage.slice(
            output_version=stage.version,
            model=model,
            extract=ExtractConfig(),
            prompt=PromptConfig(),
            scoring=GENERIC_SCORING,
        )
    )
    code = (
        "import sys\nfrom blindspot.cli import main\nfrom blindspot.peak_memory import peak_rss_mib\n"
        f"rc = main(['extract', '--model', 'm', '--bench', 'toy', '--slice', {slice_json!r}, "
        f"'--item-table', {str(items_path)!r}, '--render', {str(render_path)!r}, '--hidden', {str(out)!r}])\n"
        "print('PEAK', peak_rss_mib())\nsys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(next(line for line in result.stdout.splitlines() if line.startswith("PEAK")).split()[1])


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args()
    if args.smoke:
        args.items = 2
    model = ModelConfig(adapter="qwen2_5_vl", path=str(CHECKPOINTS / "qwen_base"), batch_size=16)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items_path, render_path = prepare(root / "n10", args.items * 10)
        levels = resolve_levels(RenderStore(render_path), ExtractConfig().levels)
        bare_loop(model, items_path, render_path, levels)  # warm-up
        bare = bare_loop(model, items_path, render_path, levels)
        loaded = load_model(model)
        start = time.perf_counter()
        extract_benchmark(
            "m",
            "toy",
            model,
            ExtractConfig(),
            PromptConfig(),
            items_path,
            render_path,
            root / "h.zarr",
            loaded=loaded,
            scoring=GENERIC_SCORING,
            progress=False,
        )
        stage = time.perf_counter() - start
        small_items, small_render = prepare(root / "n1", args.items)
        rss_small = peak_rss_mib(model, small_items, small_render, root / "small.zarr")
        rss_large = peak_rss_mib(model, items_path, render_path, root / "large.zarr")
    n = args.items * 10
    print(
        f"extract benchmark: toy qwen_base, {n} items x {len(levels)} levels, batch 16, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"  bare forward loop      : {bare:7.2f} s")
    print(f"  extract stage          : {stage:7.2f} s   (hooks + features + zarr writes)")
    print(f"  overhead               : {100 * (stage / bare - 1):7.1f} %   (target <= 10%)")
    print(f"  peak RSS, {args.items:5d} items : {rss_small:7.1f} MiB")
    print(
        f"  peak RSS, {n:5d} items : {rss_large:7.1f} MiB   "
        f"({100 * (rss_large / rss_small - 1):+.1f}%, target within 10%)"
    )
    print(json.dumps({"bare_s": bare, "stage_s": stage, "rss_small_mib": rss_small, "rss_large_mib": rss_large}))


if __name__ == "__main__":
    main()
