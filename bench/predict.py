"""Predict-stage throughput against a naive per-item loop, on the same items, levels and tiny model.

    python bench/predict.py [--family qwen2_5_vl|llava_next] [--items 16] [--batch-size 16]

Naive loop (how evaluation code is often written): for every (item, level), one ``generate()`` call for the text,
then one forward pass per option (prompt + option token) for its log-likelihood. The predict stage batches units
and reads every option's log-probability from the first generation step. Both run in this process on the same
inputs; the script checks that the parsed answers are identical and the option log-probs agree, then prints
units/s for both and the ratio (target: >= 4x on closed-answer benchmarks).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _cli as cli  # bench/_cli.py
import numpy as np
import polars as pl
import torch

from blindspot.answers import parse_answer
from blindspot.benchmarks.generic import GenericBenchmark
from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ModelConfig, PredictConfig, PromptConfig, RenderConfig
from blindspot.fixtures import write_shapes_benchmark
from blindspot.models.answering import work_units
from blindspot.models.inference import option_token_ids
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.prompts import render_prompt
from blindspot.models.tiny import build_tiny_model
from blindspot.prompts import option_labels, question_text
from blindspot.stages.predict import predict_benchmark, select_conditions
from blindspot.stages.render.run import render_benchmark
from blindspot.stages.staging import stage_benchmark, staged_paths
from blindspot.store.render import RenderStore


def prepare(root: Path, n_items: int, kind: str) -> tuple[Path, Path]:
    answer_type = "multiple_choice" if kind == "color_mc" else "yes_no"
    path = write_shapes_benchmark(root / "src", n_items=n_items, seed=0, kind=kind, bad_rows=False)
    columns = {"id": "question_id", "options": "options"} if kind == "color_mc" else {"id": "question_id"}
    config = GenericBenchmark(path=str(path), answer_type=answer_type, columns=columns)
    stage_benchmark("bench", config, staged_paths(root / "staged"))
    render = RenderConfig.model_validate(
        {
            "resize": {"longest_side": 224},
            "pixelate": {"enabled": False},
            "blank": {"enabled": False},
            "noise": {"enabled": False},
        }
    )
    render_benchmark(root / "staged" / "images.parquet", render, 0, root / "bench.zarr", workers=1, progress=False)
    return root / "staged" / "items.parquet", root / "bench.zarr"


@torch.inference_mode()
def naive_loop(loaded: LoadedModel, items_path: Path, render_path: Path, max_new_tokens: int) -> list[dict]:
    """One generate() per unit, then one forward pass per option for its log-likelihood."""
    items = pl.read_parquet(items_path).to_dicts()
    store = RenderStore(render_path)
    tokenizer = loaded.tokenizer
    rows = []
    for unit in work_units(len(items), select_conditions(store, PredictConfig())):
        item = items[unit.item]
        imaged = unit.condition.family != "none"
        prompt = render_prompt(
            loaded.processor, question_text(item["question"], item["options"], item["answer_type"], "v1"), int(imaged)
        )
        (key,) = item["image_keys"]
        image = store.image(key, unit.condition.family, unit.condition.level) if imaged else None
        inputs = loaded.processor(text=[prompt], images=[image] if imaged else None, return_tensors="pt")
        output = loaded.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
        )
        text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        logprobs = {}
        labels = option_labels(item["answer_type"], item["options"]) or []
        for label, token_ids in option_token_ids(tokenizer, tuple(labels)).items() if labels else ():
            scored = loaded.processor(text=[prompt + label], images=[image] if imaged else None, return_tensors="pt")
            logits = loaded.model(**scored).logits[0, inputs["input_ids"].shape[1] - 1]
            logprobs[label] = float(torch.logsumexp(torch.log_softmax(logits.float(), -1)[list(token_ids)], 0))
        parsed = parse_answer(text, item["answer_type"], item["options"])
        rows.append({"parsed": parsed.answer, "raw_text": text, "logprobs": logprobs})
    return rows


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--family", default="qwen2_5_vl", choices=["qwen2_5_vl", "llava_next"])
    parser.add_argument("--kind", default="color_mc", choices=["color_mc", "shape_yes_no"])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()
    if args.smoke:
        args.items, args.batch_size, args.max_new_tokens = 3, 4, 2
    torch.set_num_threads(torch.get_num_threads())

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items_path, render_path = prepare(root, args.items, args.kind)
        model = ModelConfig(
            adapter=args.family,
            path=str(build_tiny_model(args.family, root / "model")),
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
        )
        loaded = load_model(model)
        naive_loop(loaded, items_path, render_path, args.max_new_tokens)  # warm-up (first calls allocate)

        start = time.perf_counter()
        naive = naive_loop(loaded, items_path, render_path, args.max_new_tokens)
        naive_s = time.perf_counter() - start
        start = time.perf_counter()
        predict_benchmark(
            "m",
            "bench",
            model,
            PredictConfig(),
            PromptConfig(),
            items_path,
            render_path,
            root / "p.parquet",
            loaded=loaded,
            scoring=GENERIC_SCORING,
            progress=False,
        )
        stage_s = time.perf_counter() - start
        stage = pl.read_parquet(root / "p.parquet")

    identical = stage["parsed"].to_list() == [r["parsed"] for r in naive]
    same_text = stage["raw_text"].to_list() == [r["raw_text"] for r in naive]
    stage_lp = np.array(stage["option_logprobs"].explode().to_list(), dtype=float)
    naive_lp = np.array([v for r in naive for v in r["logprobs"].values()], dtype=float)
    lp_diff = float(np.abs(stage_lp - naive_lp).max()) if stage_lp.size else 0.0
    n = len(naive)
    print(
        f"predict benchmark: tiny {args.family}, {args.kind}, {args.items} items x {n // args.items} conditions "
        f"= {n} units, batch {args.batch_size}, max_new_tokens {args.max_new_tokens}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"  naive per-item loop (generate + 1 forward per option): {n / naive_s:8.2f} units/s")
    print(f"  predict stage (batched, options from the first step) : {n / stage_s:8.2f} units/s")
    print(f"  ratio stage / naive                                   : {naive_s / stage_s:8.2f}x   (target >= 4x)")
    print(
        f"  parsed answers identical: {identical}; raw text identical: {same_text}; "
        f"max option log-prob difference: {lp_diff:.2e}"
    )
    if not identical:
        raise SystemExit("parsed answers differ between the predict stage and the naive loop")


if __name__ == "__main__":
    main()
