"""The model-running stages at the published model shapes, with random weights (no hub), against their baselines.

    python bench/scale.py                      # CPU: every shape, reduced (2 layers, 1/8 width; see REDUCE)
    python bench/scale.py --full               # GPU: the published shapes themselves (bf16)
    python bench/scale.py --shape qwen2_5_vl_7b --items 64 --full

Each shape is Qwen2.5-VL-3B-Instruct, Qwen2.5-VL-7B-Instruct or llava-v1.6-mistral-7b-hf as published (layers,
widths, heads, vocabulary, vision tower, image tiling), built by transformers from its config with random weights,
with the committed toy tokenizer and processor (the processor set to the published image geometry). On the same
rendered toy items, each stage runs against its baseline in the same process:

- predict (batched, length-bucketed, option log-probs from the first step) against a naive per-unit loop
  (``generate`` per unit, one forward per option): units/s and their ratio, answers compared;
- extract (hooks, store) against a bare forward loop in the same batches: seconds and overhead;
- patch (replay from each layer) against a whole forward pass per patched layer: seconds and speed-up;
- lens (attention recorded in extract's pass, then the lens stage) against extract alone: its cost;
- knockout (replay from each window's first layer) against a whole forward pass per window: the speed-up.

``--plan`` prints the paper's predict stage planned on 1, 8 and 32 GPUs, unsplit and split (``shards: auto``),
from per-job throughput (``bench/_plan.py``); ``--full`` prints it again from the throughput it measured.

On CUDA it also prints the prefill MFU (model FLOPs of a bare prefill over its time, against the card's dense
bf16 peak), the peak GPU memory of each stage, and ``batch_size: auto``'s settled size. Everywhere it prints the
padding waste of the predict stage's batches (the share of padded positions in the encoded batches).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import _cli as cli  # bench/_cli.py
import torch
import transformers
from _plan import ASSUMED_RATES, plan_table  # bench/_plan.py
from extract import bare_loop  # bench/extract.py
from lens import whole_forward  # bench/lens.py
from predict import naive_loop  # bench/predict.py

import blindspot.models.inference as inference
from blindspot.benchmarks.generic import GenericBenchmark
from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import (
    ExtractConfig,
    KnockoutConfig,
    LensConfig,
    ModelConfig,
    PatchConfig,
    PredictConfig,
    PromptConfig,
    RenderConfig,
)
from blindspot.contracts.conditions import Condition
from blindspot.models.job import ModelJob
from blindspot.models.loading import load_model
from blindspot.prompts import option_labels
from blindspot.stages.extract import extract_benchmark
from blindspot.stages.knockout import knockout_batch
from blindspot.stages.lens import lens_benchmark
from blindspot.stages.patch import patch_benchmark
from blindspot.stages.predict import predict_benchmark
from blindspot.stages.render.run import render_benchmark
from blindspot.stages.slices import LensSlice, PatchSlice
from blindspot.stages.staging import stage_benchmark, staged_paths
from blindspot.stages.table import STAGES
from blindspot.toy.checkpoints import CHECKPOINTS
from blindspot.toy.items import write_toy_benchmark

QWEN_TEXT_3B = {
    "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 128000,
    "rope_parameters": {"mrope_section": [16, 24, 24], "rope_theta": 1000000.0, "rope_type": "default"},
}  # fmt: skip
QWEN_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
               "spatial_merge_size": 2, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31]}  # fmt: skip
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2_5_vl_3b": {
        "family": "qwen2_5_vl", "toy": "qwen_base", "tie_word_embeddings": True,
        "text_config": QWEN_TEXT_3B, "vision_config": QWEN_VISION | {"out_hidden_size": 2048},
    },
    "qwen2_5_vl_7b": {
        "family": "qwen2_5_vl", "toy": "qwen_base", "tie_word_embeddings": False,
        "text_config": QWEN_TEXT_3B | {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                                       "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064},
        "vision_config": QWEN_VISION | {"out_hidden_size": 3584},
    },
    "llava_v1_6_mistral_7b": {
        "family": "llava_next", "toy": "llava_base", "tie_word_embeddings": False,
        "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
        "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
        "text_config": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "head_dim": 128,
                        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32064,
                        "max_position_embeddings": 32768, "sliding_window": None,
                        "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}},
        "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                          "num_attention_heads": 16, "image_size": 336, "patch_size": 14, "projection_dim": 768,
                          "hidden_act": "quick_gelu"},
    },
}  # fmt: skip
"""The published configs' shape fields (config.json of each hub repository); token ids stay the toy tokenizer's."""

REDUCE = {"layers": 2, "width": 8}
"""The CPU shape: 2 decoder and 2 vision layers, every width divided by 8 with the head size kept (so the rotary
sections and the image geometry are the published ones), the published vocabulary."""

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
"""Dense bf16 tensor-core peaks by card (no sparsity), for MFU."""


def reduced(shape: dict[str, Any]) -> dict[str, Any]:
    shape = copy.deepcopy(shape)
    text, vision = shape["text_config"], shape["vision_config"]
    head = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    text["num_attention_heads"] = max(2, text["num_attention_heads"] // REDUCE["width"])
    text["num_key_value_heads"] = 1
    text["hidden_size"] = head * text["num_attention_heads"]
    text["intermediate_size"] //= REDUCE["width"]
    text["num_hidden_layers"] = REDUCE["layers"]
    if "depth" in vision:  # Qwen2.5-VL's vision tower
        vhead = vision["hidden_size"] // vision["num_heads"]
        vision["num_heads"] = max(2, vision["num_heads"] // REDUCE["width"])
        vision["hidden_size"] = vhead * vision["num_heads"]
        vision["depth"], vision["fullatt_block_indexes"] = REDUCE["layers"], [REDUCE["layers"] - 1]
        vision["out_hidden_size"] = text["hidden_size"]
    else:  # CLIP
        vhead = vision["hidden_size"] // vision["num_attention_heads"]
        vision["num_attention_heads"] = max(2, vision["num_attention_heads"] // REDUCE["width"])
        vision["hidden_size"] = vhead * vision["num_attention_heads"]
        vision["num_hidden_layers"] = REDUCE["layers"]
    vision["intermediate_size"] //= REDUCE["width"]
    return shape


def build(name: str, full: bool, out: Path, dtype: torch.dtype) -> Path:
    """A model directory: the shape's config with the toy checkpoint's token ids, random weights, the toy
    tokenizer and chat template, the processor at the published image geometry."""
    shape = SHAPES[name] if full else reduced(SHAPES[name])
    toy = CHECKPOINTS / shape["toy"]
    out.mkdir(parents=True)
    for file in toy.iterdir():
        if file.name not in ("model.safetensors", "config.json", "training.json"):
            shutil.copy(file, out / file.name)
    config = json.loads((toy / "config.json").read_text())
    for key, value in shape.items():
        if key in ("text_config", "vision_config"):
            config[key].update(value)
        elif key not in ("family", "toy"):
            config[key] = value
    config["text_config"].pop("layer_types", None)  # derived again from num_hidden_layers
    if shape["family"] == "llava_next":
        vision = config["vision_config"]
        config["image_seq_length"] = (vision["image_size"] // vision["patch_size"]) ** 2
        processor = json.loads((out / "processor_config.json").read_text())
        image = processor["image_processor"]
        side = vision["image_size"]
        image.update(crop_size={"height": side, "width": side}, size={"shortest_edge": side},
                     image_grid_pinpoints=shape["image_grid_pinpoints"])  # fmt: skip
        processor.update(patch_size=vision["patch_size"], vision_feature_select_strategy="default")
        (out / "processor_config.json").write_text(json.dumps(processor, indent=2))
    config_obj = transformers.AutoConfig.for_model(**config)
    torch.manual_seed(0)
    model = transformers.AutoModelForImageTextToText.from_config(config_obj, dtype=dtype)
    model.save_pretrained(out)
    return out


def parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(text decoder parameters without embeddings and head, vision tower + projector parameters)."""
    text = vision = 0
    for name, p in model.named_parameters():
        if "visual" in name or "vision" in name or "projector" in name:
            vision += p.numel()
        elif "embed_tokens" not in name and "lm_head" not in name:
            text += p.numel()
    return text, vision


@contextmanager
def padding_meter() -> Iterator[dict[str, int]]:
    """Count real and padded positions of every batch the stages encode."""
    counts = {"tokens": 0, "positions": 0}
    real = inference.encode_batch

    def counted(loaded, requests):  # type: ignore[no-untyped-def]
        inputs = real(loaded, requests)
        mask = inputs["attention_mask"]
        counts["tokens"] += int(mask.sum())
        counts["positions"] += mask.numel()
        return inputs

    inference.encode_batch = counted  # type: ignore[assignment]
    try:
        yield counts
    finally:
        inference.encode_batch = real  # type: ignore[assignment]


@contextmanager
def peak_memory(record: dict[str, float], key: str) -> Iterator[None]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    yield
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        record[key] = torch.cuda.max_memory_allocated() / 2**30


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, value


def prepare(root: Path, n: int, side: int) -> tuple[Path, Path]:
    """The toy items (varied question lengths), rendered clean and at one strong blur, at ``side`` pixels."""
    path = write_toy_benchmark(root / "src", n, {"fine": 0.3, "coarse": 0.3, "prior": 0.2, "conflict": 0.2}, 0)
    config = GenericBenchmark(path=str(path), answer_type="multiple_choice",
                              columns={"id": "item_id", "options": "options"})  # fmt: skip
    stage_benchmark("toy", config, staged_paths(root / "staged"))
    render = RenderConfig.model_validate({
        "resize": {"longest_side": side, "multiple_of": 28, "upscale": True}, "blur": {"kernels": [1, 51]},
        "pixelate": {"enabled": False}, "blank": {"enabled": False}, "noise": {"enabled": False},
    })  # fmt: skip
    render_benchmark(root / "staged" / "images.parquet", render, 0, root / "toy.zarr", workers=1, progress=False)
    return root / "staged" / "items.parquet", root / "toy.zarr"


def mfu(loaded: Any, seconds: float, tokens: int) -> str:
    """Model FLOPs utilisation of a prefill: 2 x parameters x tokens over the time, against the card's peak."""
    if not torch.cuda.is_available():
        return "n/a on CPU"
    text, vision = parameters(loaded.model)
    flops = 2 * (text + vision) * tokens  # dense matmuls, per token; attention scores left out (short prompts)
    card = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in card), None)
    if peak is None:
        return f"{flops / seconds / 1e12:.1f} TFLOP/s (no peak known for {card})"
    return f"{flops / seconds / peak:.1%} of {card}'s {peak / 1e12:.0f} TFLOP/s bf16 ({flops / seconds / 1e12:.1f})"


def run_shape(name: str, args: argparse.Namespace, root: Path) -> float:
    """Run every stage at one shape; returns the predict stage's units/s."""
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    started = time.perf_counter()
    path = build(name, args.full, root / name, dtype)
    build_s = time.perf_counter() - started
    items_path, render_path = prepare(root / f"{name}-data", args.items, args.side)
    batch: int | Literal["auto"] = "auto" if cuda else args.batch_size
    model = ModelConfig(
        adapter=SHAPES[name]["family"], path=str(path), batch_size=batch, max_new_tokens=args.max_new_tokens
    )  # type: ignore[arg-type]
    loaded = load_model(model)
    text, vision = parameters(loaded.model)
    memory: dict[str, float] = {}
    print(f"\n{name} ({'published shape' if args.full else 'reduced: 2 layers, 1/8 width'}), random weights, "
          f"{str(loaded.dtype).removeprefix('torch.')} on {loaded.device}"
          f"{' ' + torch.cuda.get_device_name() if cuda else ''}: {text / 1e6:,.1f} M decoder + {vision / 1e6:,.1f} M "
          f"vision parameters, {len(loaded.layers)} layers; built in {build_s:.0f} s; {args.items} items at "
          f"{args.side} px")  # fmt: skip

    naive_loop(loaded, items_path, render_path, args.max_new_tokens) if args.items <= 8 else None  # warm-up
    naive_s, naive = timed(naive_loop, loaded, items_path, render_path, args.max_new_tokens)
    with padding_meter() as pad, peak_memory(memory, "predict"):
        stage_s, _ = timed(predict_benchmark, "m", "toy", model, PredictConfig(), PromptConfig(), items_path,
                           render_path, root / f"{name}.parquet", loaded=loaded, scoring=GENERIC_SCORING,
                           progress=False)  # fmt: skip
    import polars as pl

    stage = pl.read_parquet(root / f"{name}.parquet")
    agree = sum(a == b["parsed"] for a, b in zip(stage["parsed"], naive, strict=True)) / len(naive)
    n = len(naive)
    waste = 1 - pad["tokens"] / pad["positions"] if pad["positions"] else 0.0
    print(
        f"  predict: {n} units; naive loop {n / naive_s:7.2f} units/s, stage {n / stage_s:7.2f} units/s "
        f"(x{naive_s / stage_s:.2f}); same parsed answer on {agree:.0%} of units; padding waste {waste:.1%}"
    )
    rate = n / stage_s

    levels = ["blur/0", "blur/1"]
    bare_batch = model if isinstance(model.batch_size, int) else model.model_copy(update={"batch_size": 8})
    bare_s = bare_loop(bare_batch, items_path, render_path, levels)
    with padding_meter() as prefill:
        prefill_s = bare_loop(bare_batch, items_path, render_path, levels)
    extract_benchmark(
        "m",
        "toy",
        bare_batch,
        ExtractConfig(),
        PromptConfig(),
        items_path,
        render_path,
        root / f"{name}-warm.zarr",
        scoring=GENERIC_SCORING,
        loaded=loaded,
        progress=False,
    )  # warm-up
    with peak_memory(memory, "extract"):
        extract_s, _ = timed(extract_benchmark, "m", "toy", bare_batch, ExtractConfig(), PromptConfig(), items_path,
                             render_path, root / f"{name}.zarr", scoring=GENERIC_SCORING, loaded=loaded,
                             progress=False)  # fmt: skip
    utilisation = mfu(loaded, prefill_s, prefill["tokens"])
    print(
        f"  extract: bare forward loop {bare_s:7.2f} s, stage {extract_s:7.2f} s "
        f"(overhead {extract_s / bare_s - 1:+.0%}); prefill MFU {utilisation}"
    )

    patch_items = min(args.items, args.patch_items)
    settings = PatchConfig.model_validate({"models": ["m"], "max_items": patch_items, "positions": ["image", "last"]})
    timings = {}
    for method in ("full_forward", "replay"):
        patch = settings.model_copy(update={"method": method})
        config = PatchSlice(output_version=STAGES["patch"].version, model=bare_batch, patch=patch,
                            prompt=PromptConfig(), seed=0, scoring=GENERIC_SCORING)  # fmt: skip
        outputs = {"patches": root / f"{name}-{method}.parquet", "per_item": root / f"{name}-{method}.items.parquet"}
        with peak_memory(memory, f"patch ({method})"):
            timings[method], _ = timed(patch_benchmark, "m", "toy", config, items_path, render_path, outputs,
                                       loaded=loaded, progress=False)  # fmt: skip
    print(f"  patch ({patch_items} items, 2 pairs, 2 position sets, {len(loaded.layers) + 1} layer indices): "
          f"whole forward per layer {timings['full_forward']:7.2f} s, replay {timings['replay']:7.2f} s "
          f"(x{timings['full_forward'] / timings['replay']:.2f})")  # fmt: skip
    lens_and_knockout(name, loaded, bare_batch, items_path, render_path, root, memory, patch_items)
    if memory:
        print("  peak GPU memory: " + ", ".join(f"{k} {v:.1f} GiB" for k, v in memory.items()))
    shutil.rmtree(path)
    return rate


def lens_and_knockout(
    name: str,
    loaded: Any,
    model: ModelConfig,
    items_path: Path,
    render_path: Path,
    root: Path,
    memory: dict[str, float],
    n_items: int,
) -> None:
    """The lens (attention recorded in extract's pass, then the lens stage) against extract alone; the knockout
    sweep by replay against a whole forward pass per window (bench/lens.py's measures, at this shape)."""
    alone = ExtractConfig.model_validate({"attention": False})
    alone_s, _ = timed(extract_benchmark, "m", "toy", model, alone, PromptConfig(), items_path, render_path,
                       root / f"{name}-alone.zarr", scoring=GENERIC_SCORING, loaded=loaded, progress=False)  # fmt: skip
    with peak_memory(memory, "extract (attention)"):
        looking_s, _ = timed(extract_benchmark, "m", "toy", model, ExtractConfig(), PromptConfig(), items_path,
                             render_path, root / f"{name}-looking.zarr", scoring=GENERIC_SCORING, loaded=loaded,
                             progress=False)  # fmt: skip
    config = LensSlice(output_version=STAGES["lens"].version, model=model, lens=LensConfig(bootstrap=200),
                       prior_field="prior_answer", seed=0)  # fmt: skip
    outputs = {kind: root / f"{name}-lens.{kind}.parquet" for kind in ("lens", "per_item", "sinks")}
    with peak_memory(memory, "lens"):
        lens_s, _ = timed(lens_benchmark, "m", "toy", config, root / f"{name}-looking.zarr", items_path, outputs,
                          loaded=loaded)  # fmt: skip
    cost = (looking_s - alone_s + lens_s) / alone_s
    print(f"  lens: extract alone {alone_s:7.2f} s, attention recorded {looking_s - alone_s:+7.2f} s, lens stage "
          f"{lens_s:7.2f} s: {cost:+.1%} over extract alone (target <= 15%)")  # fmt: skip
    job = ModelJob.open("knockout", "m", "toy", model, PromptConfig(), {}, items_path, render_path,
                        root / f"{name}-k.parquet", loaded=loaded, scoring=GENERIC_SCORING, progress=False)  # fmt: skip
    items = [i for i, r in enumerate(job.items) if option_labels(r["answer_type"], r["options"])][:n_items]
    settings = KnockoutConfig.model_validate({"windows": [max(1, len(loaded.layers) // 8)], "positions": ["last"]})
    clean = Condition("blur", 0, 1.0)
    with peak_memory(memory, "knockout (replay)"):
        replay_s, rows = timed(knockout_batch, job, items, [clean], settings)
    full_s, margins = timed(whole_forward, job, items, clean, settings)
    largest = max(abs(r["knocked_margin"] - m) for r, m in zip(rows, margins, strict=True))
    print(f"  knockout ({len(items)} items, {len(rows) // max(len(items), 1)} windows of "
          f"{settings.windows[0]} layers): whole forward per window {full_s:7.2f} s, replay {replay_s:7.2f} s "
          f"(x{full_s / replay_s:.2f}, target >= 1.5x); largest |margin difference| {largest:.1e}")  # fmt: skip


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--full", action="store_true", help="the published shapes (GPU); default: reduced")
    parser.add_argument("--items", type=int, default=None, help="default: 8 on CPU, 64 on GPU")
    parser.add_argument("--patch-items", type=int, default=8)
    parser.add_argument("--side", type=int, default=None, help="working size; default 224 on CPU, 448 on GPU")
    parser.add_argument("--batch-size", type=int, default=8, help="on CPU (CUDA uses batch_size: auto)")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--plan", action="store_true", help="only the paper's run on 1, 8 and 32 GPUs (assumed rates)")
    args = parser.parse_args()
    if args.plan or args.smoke:
        print(plan_table(ASSUMED_RATES, "at the README's assumed throughput"))
        if args.plan:
            return
    if args.smoke:
        args.shape, args.items, args.patch_items, args.side, args.batch_size, args.max_new_tokens = (
            next(iter(SHAPES)),
            2,
            2,
            56,
            2,
            2,
        )
    cuda = torch.cuda.is_available()
    args.items = args.items or (64 if cuda else 8)
    args.side = args.side or (448 if cuda else 224)
    if args.full and not cuda:
        raise SystemExit("--full builds 3-8 B parameter models: run it on a GPU (the CPU run uses reduced shapes)")
    print(f"scale benchmark: torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        rates = {name: run_shape(name, args, Path(tmp)) for name in (SHAPES if args.shape == "all" else [args.shape])}
    if args.full and set(rates) == set(ASSUMED_RATES):
        print(plan_table(rates, f"at the predict throughput measured above ({torch.cuda.get_device_name()})"))


if __name__ == "__main__":
    main()
