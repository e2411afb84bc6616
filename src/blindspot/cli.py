"""The ``blindspot`` command line: one subcommand per pipeline stage, plus config and fixture helpers.

Every Snakemake rule calls one of these. Errors a user can fix print one line (``blindspot <cmd>: error: ...``)
and exit with status 2; nothing prints a traceback for a bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from blindspot.config import ConfigError, format_validation_error, json_schema, load_config


class UserError(Exception):
    """An error with a one-line message for the user."""


def _parse_slice(stage: str, text: str, **names: str) -> Any:
    """Validate a stage's slice. Errors name the user's config key: with ``model="qwen"`` the slice key
    ``model.path`` reads ``models.qwen.path``, as in the config file."""
    from blindspot.slices import parse_slice

    try:
        return parse_slice(stage, text)
    except ValidationError as error:
        line = format_validation_error(error).splitlines()[0]
        head, _, rest = line.partition(".")
        if head in names:
            raise UserError(f"{head}s.{names[head]}.{rest}") from None
        raise UserError(f"bad {stage} slice: {line}") from None


def _require_outputs(*stages: tuple[str, str]) -> None:
    """Each (path, stage) must exist: a one-line error naming the stage to run first otherwise."""
    for path, stage in stages:
        if not Path(path).exists():
            raise UserError(f"no {stage} output at '{path}'; run the {stage} step first")


def cmd_check_config(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    print(f"{args.config}: OK ({len(config.benchmarks)} benchmark(s): {', '.join(config.benchmarks)})")


def cmd_schema(args: argparse.Namespace) -> None:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_stage(args: argparse.Namespace) -> None:
    from blindspot.staging.sources import SourceError
    from blindspot.staging.stage import StageError, stage_benchmark

    config = _parse_slice("stage", args.slice, benchmark=args.bench)
    try:
        summary = stage_benchmark(args.bench, config.benchmark, args.out)
    except SourceError as error:
        raise UserError(f"benchmarks.{args.bench}.{error}") from None
    except StageError as error:
        raise UserError(str(error)) from None
    reasons = ", ".join(f"{k}={v}" for k, v in summary.reasons.items()) or "none"
    print(f"staged {args.bench}: {summary.items} items, {summary.images} images, {summary.rejects} rejects ({reasons})")


def cmd_render(args: argparse.Namespace) -> None:
    from blindspot.render.run import render_benchmark

    config = _parse_slice("render", args.slice)
    _require_outputs((args.images, "stage"))
    summary = render_benchmark(args.images, config.render, config.seed, args.out, workers=args.workers)
    print(f"rendered {args.out}: {summary.images} images x {summary.conditions} conditions")


def cmd_tiny_model(args: argparse.Namespace) -> None:
    from blindspot.models.tiny import build_tiny_model

    out = build_tiny_model(args.family, args.out, seed=args.seed)
    print(f"wrote tiny {args.family} model to {out}")


def cmd_predict(args: argparse.Namespace) -> None:
    from blindspot.models.loading import ModelLoadError
    from blindspot.predict import PredictError, predict_benchmark

    config = _parse_slice("predict", args.slice, model=args.model)
    _require_outputs((args.items, "stage"), (args.render, "render"))
    try:
        rows = predict_benchmark(args.model, config.model, config.predict, args.items, args.render, args.out)
    except ModelLoadError as error:
        raise UserError(f"models.{args.model}.{error}") from None
    except PredictError as error:
        raise UserError(str(error)) from None
    print(f"predicted {args.model} on {Path(args.out).stem}: {rows} rows")


def cmd_decay(args: argparse.Namespace) -> None:
    from blindspot.decay import DecayError, decay_benchmark

    config = _parse_slice("decay", args.slice)
    _require_outputs((args.predictions, "predict"))
    try:
        n = decay_benchmark(args.predictions, config.decay, config.seed, args.out_dir, args.bench)
    except DecayError as error:
        raise UserError(str(error)) from None
    print(f"decay metrics for {args.bench}: {n} items")


def cmd_extract(args: argparse.Namespace) -> None:
    from blindspot.extract import ExtractError, extract_benchmark
    from blindspot.models.loading import ModelLoadError

    config = _parse_slice("extract", args.slice, model=args.model)
    _require_outputs((args.items, "stage"), (args.render, "render"))
    try:
        summary = extract_benchmark(args.model, config.model, config.extract, args.items, args.render, args.out)
    except ModelLoadError as error:
        raise UserError(f"models.{args.model}.{error}") from None
    except ExtractError as error:
        raise UserError(str(error)) from None
    print(f"extracted {args.model} on {Path(args.out).stem}: {summary}")


def cmd_probe(args: argparse.Namespace) -> None:
    from blindspot.probes import probe_benchmark

    config = _parse_slice("probe", args.slice)
    _require_outputs((args.hidden, "extract"))
    try:
        rows = probe_benchmark(args.hidden, args.items, config.probe, config.seed, args.out, args.model)
    except ValueError as error:
        raise UserError(str(error)) from None
    print(f"probed {args.model} on {Path(args.out).stem}: {rows} rows")


def cmd_toy_data(args: argparse.Namespace) -> None:
    from blindspot.config import ToyConfig
    from blindspot.toy.items import write_toy_benchmark

    toy = ToyConfig()
    if args.config:
        data = yaml.safe_load(Path(args.config).read_text()) or {}
        try:
            toy = ToyConfig.model_validate(data.get("toy") or {})
        except ValidationError as error:
            raise UserError(f"toy.{format_validation_error(error).splitlines()[0]}") from None
    path = write_toy_benchmark(args.out, toy.n_items, dict(toy.shares), toy.seed)
    print(f"wrote {path}: {toy.n_items} items, shares {dict(toy.shares)}, seed {toy.seed}")


def cmd_toy_train(args: argparse.Namespace) -> None:
    from blindspot.toy.checkpoints import train_all

    train_all(args.out, families=args.family, donor_layer=args.donor_layer, only=args.only)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from blindspot.toy.calibrate import calibrate, format_rows

    config = load_config(args.config)
    try:
        rows, notes = calibrate(config, args.results)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from None
    print(format_rows(rows))
    for note in notes:
        print(note)
    failed = [r for r in rows if not r.ok]
    if failed:
        raise UserError(f"{len(failed)} of {len(rows)} calibration checks out of tolerance")
    print(f"all {len(rows)} calibration checks within tolerance")


def cmd_demo_data(args: argparse.Namespace) -> None:
    from blindspot.fixtures import write_shapes_benchmark

    path = write_shapes_benchmark(
        args.out,
        n_items=args.items,
        seed=args.seed,
        fmt=args.format,
        image_mode=args.image_mode,
        kind=args.kind,
        bad_rows=args.bad_rows,
    )
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blindspot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("check-config", cmd_check_config, "Validate a config file; one line per problem.")
    p.add_argument("config")
    p = add("schema", cmd_schema, "Print (or write) the config's JSON schema.")
    p.add_argument("--out")
    p = add("stage", cmd_stage, "Stage one benchmark into the canonical items table.")
    p.add_argument("--bench", required=True)
    p.add_argument("--slice", required=True, help="the stage's config slice, as JSON")
    p.add_argument("--out", required=True, help="output directory (items/images/rejects.parquet)")
    p = add("render", cmd_render, "Render every obfuscation family and level of a staged benchmark to Zarr.")
    p.add_argument("--images", required=True, help="staged images.parquet")
    p.add_argument("--slice", required=True, help="the render config slice, as JSON")
    p.add_argument("--out", required=True, help="output .zarr store")
    p.add_argument("--workers", type=int, default=2, help="threads rendering images in parallel")
    p = add("tiny-model", cmd_tiny_model, "Build a tiny random model (real transformers classes) for offline runs.")
    p.add_argument("--family", required=True, choices=["qwen2_5_vl", "llava_next"])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = add("predict", cmd_predict, "Run one model on every rendered condition of one benchmark.")
    p.add_argument("--model", required=True)
    p.add_argument("--slice", required=True, help="the predict config slice, as JSON")
    p.add_argument("--items", required=True, help="staged items.parquet")
    p.add_argument("--render", required=True, help="render store (.zarr)")
    p.add_argument("--out", required=True, help="predictions parquet")
    p = add("decay", cmd_decay, "Decay metrics, item classes and the vision-indispensable manifest.")
    p.add_argument("--bench", required=True)
    p.add_argument("--slice", required=True, help="the decay config slice, as JSON")
    p.add_argument("--predictions", required=True)
    p.add_argument("--out-dir", required=True)
    p = add("extract", cmd_extract, "Per-layer hidden-state features of one model on one benchmark, to Zarr.")
    p.add_argument("--model", required=True)
    p.add_argument("--slice", required=True, help="the extract config slice, as JSON")
    p.add_argument("--items", required=True)
    p.add_argument("--render", required=True)
    p.add_argument("--out", required=True, help="hidden-state store (.zarr)")
    p = add("probe", cmd_probe, "Layer-wise MLP and linear probes (all layers at once) with control tasks.")
    p.add_argument("--model", default="")
    p.add_argument("--slice", required=True, help="the probe config slice, as JSON")
    p.add_argument("--hidden", required=True, help="hidden-state store (.zarr)")
    p.add_argument("--items", required=True)
    p.add_argument("--out", required=True, help="probes parquet")
    p = add("toy-data", cmd_toy_data, "Write the toy benchmark (planted kinds) in the generic adapter's format.")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="read n_items, seed and shares from this config's `toy` section")
    p = add("toy-train", cmd_toy_train, "Train the toy VLMs (base, layer donor, full donor) from scratch on CPU.")
    p.add_argument("--out", required=True, help="checkpoint folder (one sub-folder per model)")
    p.add_argument("--family", nargs="+", default=["qwen2_5_vl", "llava_next"], choices=["qwen2_5_vl", "llava_next"])
    p.add_argument("--donor-layer", type=int, default=0, help="the only decoder layer the layer donor fine-tunes")
    p.add_argument("--only", nargs="+", help="train only these checkpoints (their parents must exist in --out)")
    p = add("calibrate", cmd_calibrate, "Planted toy-world quantities beside the measured ones; non-zero if off.")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--results", default="results")
    p = add("demo-data", cmd_demo_data, "Write a small fixture benchmark (coloured shapes) in the generic format.")
    p.add_argument("--out", required=True)
    p.add_argument("--items", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    p.add_argument("--image-mode", choices=["struct", "bytes", "base64", "path"], default="struct")
    p.add_argument("--kind", choices=["color_mc", "shape_yes_no"], default="color_mc")
    p.add_argument("--bad-rows", action=argparse.BooleanOptionalAction, default=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (UserError, ConfigError) as error:
        for line in str(error).splitlines():
            print(f"blindspot {args.command}: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
