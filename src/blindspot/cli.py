"""The ``blindspot`` command line: one subcommand per pipeline stage, plus config and fixture helpers.

Every Snakemake rule calls one of these. Errors a user can fix print one line (``blindspot <cmd>: error: ...``)
and exit with status 2; nothing prints a traceback for a bad input.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from blindspot import __version__, progress
from blindspot.config import BlindspotConfig, ConfigError, json_schema, load_config
from blindspot.contracts.parts import WHOLE, Part
from blindspot.errors import BlindspotError
from blindspot.stages.slices import user_key
from blindspot.stages.table import STAGES, JobContext, Stage, option
from blindspot.store.tables import read_frame


class UserError(Exception):
    """An error with a one-line message for the user."""


def cmd_check_config(args: argparse.Namespace) -> None:
    from blindspot.config import check_paths, results_problem

    config = load_config(args.config)
    if (problem := results_problem(config.results)) is not None:
        raise ConfigError(f"results: {problem}")
    if args.paths:
        check_paths(config)
        model_problems(config)
    if args.data:
        data_problems(config)
    checked = "shape and paths" if args.paths else "shape only; paths not checked"
    checked += "; every benchmark source opened and its columns checked" if args.data else ""
    print(f"{args.config}: OK ({checked}; {len(config.benchmarks)} benchmark(s): {', '.join(config.benchmarks)})")


def data_problems(config: BlindspotConfig) -> None:
    """Open every benchmark's source and check its column mapping; one line per problem, before any job."""
    lines = [f"benchmarks.{name}.{problem}" for name, entry in config.benchmarks.items() for problem in
             entry.data_problems()]  # fmt: skip
    if lines:
        raise ConfigError("\n".join(lines))


def cmd_models(args: argparse.Namespace) -> None:
    """Every model adapter (``models.<name>.adapter``): what it loads, the transformers class, the swap units."""
    from blindspot.models.families import FAMILIES

    for family in FAMILIES.values():
        print(f"{family.name}: {family.description}")
        print(f"    class:      transformers.{family.model_class}")
        if family.model_types:
            print(f"    model_type: {', '.join(family.model_types)}")
        units = ", ".join(name for name, _ in family.units) or "none (decoder layers only)"
        print(f"    swap units: decoder layers; {units}")


def plain(text: str) -> str:
    """Docstring text for the terminal: reST markup (``code``, :mod:`x`) as plain text."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def cmd_adapters(args: argparse.Namespace) -> None:
    """Every registered benchmark adapter: its description, where it is published, the columns it reads."""
    from blindspot.benchmarks import registered

    for spec in registered():
        print(f"{spec.name}: {spec.description}")
        if spec.source:
            print(f"    source:  {spec.source}")
        if spec.columns:
            print(f"    columns: {', '.join(spec.columns)}")
        defaults = {k: v for k in ("split", "subset") if (v := spec.config.model_fields.get(k)) is not None}
        shown = {k: f.get_default(call_default_factory=True) for k, f in defaults.items()}
        if shown:
            print("    config:  " + ", ".join(f"{k}: {v}" for k, v in shown.items() if v is not None))


def model_problems(config: BlindspotConfig) -> None:
    """Every model directory checked as its predict job will check it; one line per problem."""
    from blindspot.models.loading import ModelLoadError, check_model_directory

    lines = []
    for name, model in config.models.items():
        try:
            check_model_directory(model)
        except ModelLoadError as error:
            lines.append(user_key(str(error), {"model": name}))
    if lines:
        raise ConfigError("\n".join(lines))


def cmd_schema(args: argparse.Namespace) -> None:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)


def stage_job(stage: Stage, args: argparse.Namespace, label: str, body: Callable[..., str]) -> None:
    """What every job of a stage does around its work: say it started, validate the slice, check the inputs (each
    exists and is the output of the stage the table names), call ``body(config, inputs, wildcards)``, and print its
    summary; a fixable error is one line naming the user's key."""
    wildcards = {w: getattr(args, w) for w in stage.wildcards}
    progress.say(f"{label} {'/'.join(wildcards.values())}: started (log: {args.log})")
    try:
        config = stage.parse_slice(args.slice)
        inputs = {item.name: Path(getattr(args, item.name)) for item in stage.inputs}
        for item in stage.inputs:
            if not inputs[item.name].exists():
                raise UserError(f"no {item.stage} output at '{inputs[item.name]}'; run the {item.stage} step first")
        stage.check_inputs(inputs)
        summary = body(config, inputs, wildcards)
    except BlindspotError as error:
        raise UserError(user_key(str(error), wildcards)) from None
    print(summary)
    for line in summary.splitlines():
        progress.say(line)


def part_label(text: str) -> Part:
    """``--part``: ``k-of-n``, or argparse's one-line usage error saying the form expected."""
    try:
        return Part.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_stage(stage: Stage, args: argparse.Namespace) -> None:
    """Run one job of a stage (one part of it, for a split job)."""

    def body(config: Any, inputs: dict[str, Path], wildcards: dict[str, str]) -> str:
        outputs = {name: Path(getattr(args, name)) for name in stage.output_names}
        part = args.part if stage.splittable else WHOLE
        job = JobContext(stage.name, wildcards, threads=args.threads, progress=not args.quiet, part=part)
        return stage.load_runner()(config, inputs, outputs, job)

    stage_job(stage, args, stage.name, body)


def gather_stage(stage: Stage, args: argparse.Namespace) -> None:
    """Gather the parts of a split job into the outputs the unsplit job writes."""

    def body(config: Any, inputs: dict[str, Path], wildcards: dict[str, str]) -> str:
        lists = {name: [Path(p) for p in getattr(args, name)] for name in stage.output_names}
        counts = {len(paths) for paths in lists.values()}
        if len(counts) != 1:
            raise UserError(f"every output needs the same number of parts, got {sorted(counts)}")
        for paths in lists.values():
            for path in paths:
                if not path.exists():
                    raise UserError(f"no part at '{path}'; run the split {stage.name} jobs first (through snakemake)")
        parts = [{name: lists[name][k] for name in stage.output_names} for k in range(counts.pop())]
        outputs = {name: Path(getattr(args, f"{name}_out")) for name in stage.output_names}
        return stage.load_gatherer()(config, inputs, parts, outputs, JobContext(stage.name, wildcards))

    stage_job(stage, args, f"gather {stage.name}", body)


def cmd_tiny_model(args: argparse.Namespace) -> None:
    from blindspot.models.tiny import build_tiny_model

    out = build_tiny_model(args.family, args.out, seed=args.seed)
    print(f"wrote tiny {args.family} model to {out}")


def cmd_toy_data(args: argparse.Namespace) -> None:
    from blindspot.config import ToyConfig
    from blindspot.toy.items import write_toy_benchmark

    # The config's shape is validated whole (paths are not checked: this command creates the benchmark's path).
    toy = (load_config(args.config).toy if args.config else None) or ToyConfig()
    shares = {str(kind): share for kind, share in toy.shares.items()}
    path = write_toy_benchmark(args.out, toy.n_items, shares, toy.seed, toy.shared_images, toy.questions_per_image)
    print(f"wrote {path}: {toy.n_items} items, shares {shares}, seed {toy.seed}, {toy.shared_images:.0%} of them "
          f"asked {toy.questions_per_image} at a time about one image")  # fmt: skip


def cmd_toy_train(args: argparse.Namespace) -> None:
    from blindspot.toy.checkpoints import train_all

    train_all(args.out, families=args.family, donor_layer=args.donor_layer, only=args.only)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from blindspot.toy.calibrate import calibrate, format_rows

    config = load_config(args.config)
    try:
        rows, notes = calibrate(config, args.results or config.results)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from None
    print(format_rows(rows))
    for note in notes:
        print(note)
    failed = [r for r in rows if not r.ok]
    if failed:
        raise UserError(f"{len(failed)} of {len(rows)} calibration checks out of tolerance")
    print(f"all {len(rows)} calibration checks within tolerance")


def cmd_aggregate(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from blindspot.config import format_validation_error
    from blindspot.stages.aggregate.layout import AGGREGATE_VERSION, AggregateSlice, aggregate_slice
    from blindspot.stages.aggregate.run import aggregate

    if args.slice:
        try:
            config = AggregateSlice.model_validate_json(args.slice)
        except ValidationError as error:
            raise UserError(format_validation_error(error).splitlines()[0]) from None
        if config.output_version != AGGREGATE_VERSION:
            raise UserError(f"the aggregate slice is for output version {config.output_version}: rerun snakemake")
    else:
        config = aggregate_slice(load_config(args.config))
    for line in aggregate(config, args.results):
        print(line)
        for shown in line.splitlines():
            progress.say(shown)


def cmd_export(args: argparse.Namespace) -> None:
    from blindspot.stages.aggregate.needs_image import export_benchmark, judge, read_predictions
    from blindspot.stages.table import output_path

    config = load_config(args.config)
    results = Path(args.results or config.results)
    out = Path(args.out) if args.out else results / "export"
    for bench in args.bench or sorted(config.benchmarks):
        if bench not in config.benchmarks:
            raise UserError(f"--bench {bench}: not a configured benchmark ({', '.join(sorted(config.benchmarks))})")
        paths = [output_path(results, "predict", "predictions", model=m, bench=bench) for m in sorted(config.models)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UserError(f"no predictions at '{missing[0]}' ({len(missing)} missing); run the workflow first")
        judged = judge(read_predictions(paths), config.decay.coarse_families, config.decay.margin_threshold)
        counts = export_benchmark(
            bench,
            judged,
            output_path(results, "stage", "item_table", bench=bench),
            output_path(results, "stage", "images", bench=bench),
            out / bench,
            config.decay.margin_threshold,
        )
        print(f"{bench}: {counts['items_exported']} of {counts['items_judged']} items need the image "
              f"(no model of {len(counts['models'])} answers them right without it) -> {out / bench}")  # fmt: skip


def cmd_summary(args: argparse.Namespace) -> None:

    from blindspot.stages.aggregate.run import format_summary

    path = Path(args.results) / "tables" / "summary.parquet"
    if not path.is_file():
        raise UserError(f"no summary table at '{path}'; run the workflow (its aggregate step writes it)")
    print(format_summary(read_frame(path)))
    print(f"report: {Path(args.results) / 'report.html'}")


def cmd_verify(args: argparse.Namespace) -> None:
    from blindspot.store.verify import action, repair, verify

    paths = [Path(p) for p in args.paths]
    for path in paths:
        if not path.exists():
            raise UserError(f"no such file or folder '{path}'")
    findings = verify(paths, progress=True)
    for finding in findings:
        if finding.status != "ok" or args.all:
            print(f"{finding.status:9s} {finding.path}  {finding.detail}")
    damaged = [f for f in findings if f.status == "damaged"]
    if args.repair:
        for path in repair(damaged):
            print(f"  deleted {path}: the next snakemake run rebuilds it")
    else:
        for finding in damaged:
            print(f"  -> {action(finding)}")
    print(f"{len(findings)} stores and tables checked: {len(damaged)} damaged, "
          f"{sum(f.status == 'unchecked' for f in findings)} without checksums")  # fmt: skip
    if damaged and not args.repair:
        raise UserError(f"{len(damaged)} damaged file(s): {', '.join(str(f.path) for f in damaged)}")


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
    parser = argparse.ArgumentParser(prog="blindspot", description=plain(__doc__.splitlines()[0]))
    parser.add_argument("--version", action="version", version=f"blindspot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        help_ = plain(help_)
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("check-config", cmd_check_config, "Validate a config file; one line per problem.")
    p.add_argument("config")
    p.add_argument(
        "--paths",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also check that every configured path exists (--no-paths: the shape only)",
    )
    p.add_argument(
        "--data", action="store_true", help="also open every benchmark's source and check its column mapping"
    )
    add("adapters", cmd_adapters, "List every benchmark adapter: what it is, where it is published, its columns.")
    add("models", cmd_models, "List every model adapter: what it loads, its transformers class, its swap units.")
    p = add("schema", cmd_schema, "Print (or write) the config's JSON schema.")
    p.add_argument("--out")
    for stage in STAGES.values():
        p = add(stage.name, partial(run_stage, stage), stage.help)
        for wildcard in stage.wildcards:
            p.add_argument(f"--{wildcard}", required=True, help=f"the {wildcard} name (a config key)")
        p.add_argument("--slice", required=True, help=f"the {stage.name} config slice, as JSON")
        for item in stage.inputs:
            p.add_argument(
                f"--{option(item.name)}",
                dest=item.name,
                required=True,
                help=f"input: the {item.stage} step's {item.output} ({stage.input_template(item.name)})",
            )
        for output in stage.outputs:
            p.add_argument(
                f"--{option(output.name)}", dest=output.name, required=True, help=f"output: {output.template}"
            )
        if stage.splittable:
            p.add_argument("--part", type=part_label, default=WHOLE, help="the part of the items to run, k-of-n "
                           "(default: all)")  # fmt: skip
        p.add_argument("--threads", type=int, default=1, help="CPU threads the job may use")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--log", help="write the job's output here; the console gets its start, progress and result")
    p = add("gather", lambda args: args.gather(args), "Gather the parts of a split job into the unsplit outputs.")
    by_stage = p.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage in STAGES.values():
        if not stage.splittable:
            continue
        q = by_stage.add_parser(stage.name, help=f"gather a split {stage.name} job")
        q.set_defaults(gather=partial(gather_stage, stage))
        for wildcard in stage.wildcards:
            q.add_argument(f"--{wildcard}", required=True, help=f"the {wildcard} name (a config key)")
        q.add_argument("--slice", required=True, help=f"the {stage.name} config slice, as JSON")
        for item in stage.inputs:
            q.add_argument(f"--{option(item.name)}", dest=item.name, required=True,
                           help=f"input: the {item.stage} step's {item.output}")  # fmt: skip
        for output in stage.outputs:
            q.add_argument(f"--{option(output.name)}-parts", dest=output.name, nargs="+", required=True,
                           help=f"the parts' {output.name}, in part order")  # fmt: skip
            q.add_argument(f"--{option(output.name)}", dest=f"{output.name}_out", required=True,
                           help=f"output: {output.template}")  # fmt: skip
        q.add_argument("--log", help="write the job's output here; the console gets its start and result")
    p = add("tiny-model", cmd_tiny_model, "Build a tiny random model (real transformers classes) for offline runs.")
    p.add_argument("--family", required=True, choices=["qwen2_5_vl", "llava_next"])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = add("toy-data", cmd_toy_data, "Write the toy benchmark (planted kinds) in the generic adapter's format.")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="read n_items, seed and shares from this config's `toy` section")
    p = add("toy-train", cmd_toy_train, "Train the toy VLMs (base, layer donor, full donor) from scratch on CPU.")
    p.add_argument("--out", required=True, help="checkpoint folder (one sub-folder per model)")
    p.add_argument(
        "--family",
        nargs="+",
        default=["qwen2_5_vl", "llava_next"],
        choices=["qwen2_5_vl", "llava_next"],
        help="default: both (the committed checkpoints)",
    )
    p.add_argument(
        "--donor-layer", type=int, default=2, help="the only decoder layer the layer donor fine-tunes (default 2)"
    )
    p.add_argument("--only", nargs="+", help="train only these checkpoints (their parents must exist in --out)")
    p = add("calibrate", cmd_calibrate, "Planted toy-world quantities beside the measured ones; non-zero if off.")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--results", help="the results folder (default: the config's results)")
    p = add("aggregate", cmd_aggregate, "Tables, plots and report.html from every finished output.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--slice", help="the aggregate config slice, as JSON (what the workflow passes)")
    source.add_argument("--config", default="config/config.yaml", help="or: build the slice from this config")
    p.add_argument("--results", default="results", help="the results folder to read and write")
    p.add_argument("--log", help="write the job's output here; the console gets its summary table and warnings")
    p = add("verify", cmd_verify, "Check every store and table (checksums, missing chunks); name the damaged ones.")
    p.add_argument("paths", nargs="*", default=["results"], help="files or folders (default: results)")
    p.add_argument("--all", action="store_true", help="list every file checked, not only the problems")
    p.add_argument(
        "--repair",
        action="store_true",
        help="delete every damaged store and table, so the next snakemake run rebuilds it",
    )
    p = add("export", cmd_export, "Write the items no model answers right without the image, as a benchmark.")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--results", help="the results folder (default: the config's results)")
    p.add_argument("--out", help="where to write (default: <results>/export/<bench>)")
    p.add_argument("--bench", nargs="+", help="only these benchmarks (default: every one)")
    p = add("summary", cmd_summary, "Print the summary table of a finished run and the report's path.")
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
    if hasattr(signal, "SIGXFSZ"):  # past `ulimit -f` a write then fails with EFBIG (one line) instead of a kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    parser = build_parser()
    args = parser.parse_args(argv)
    console = JobLog(args.log) if getattr(args, "log", None) else None
    try:
        args.func(args)
    except (UserError, ConfigError) as error:
        for line in str(error).splitlines():
            error_line(args.command, line, console)
        return 2
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        where = f" at '{error.filename}'" if error.filename else ""
        what, fix = DISK_ERRORS[error.errno]
        error_line(args.command, f"{what}{where} (errno {error.errno}); {fix} and rerun: {partial_note()}", console)
        return 2
    except MemoryError:
        fix = "give the job more memory (mem_mb), or lower the model's batch_size (or set it to auto)"
        error_line(args.command, f"the machine ran out of memory; {fix}, and rerun: {partial_note()}", console)
        return 2
    except BaseException:
        if console is not None:  # an unforeseen failure: the traceback is in the log; the console says where
            console.err.write(f"blindspot {args.command}: error: unexpected failure; the traceback is in {args.log}\n")
        raise
    return 0


class JobLog:
    """A job's output (file descriptors 1 and 2: progress bars, library warnings, tracebacks) goes to its log file;
    the console keeps the short lines (:mod:`blindspot.progress`) and the one-line error."""

    def __init__(self, path: str) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        self.err = os.fdopen(os.dup(2), "w", buffering=1)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        progress.set_console(self.out)


def error_line(command: str, message: str, console: JobLog | None) -> None:
    """The one-line error: in the log, and on the console where the job's output goes to its log."""
    line = f"blindspot {command}: error: {message}"
    print(line, file=sys.stderr, flush=True)
    if console is not None:
        console.err.write(line + "\n")
        console.err.flush()


def partial_note() -> str:
    """What a job that failed on the disk or memory kept: its finished work (the rerun resumes from it), or
    nothing (its empty resume folders are removed)."""
    from blindspot.store.atomic import settle_partials

    kept = settle_partials()
    if not kept:
        return "nothing partial was kept"
    shown = "; ".join(f"{count} finished piece(s) in '{folder}'" for folder, count in kept)
    return f"kept {shown}: the rerun resumes from there"


DISK_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free space"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota"),
    errno.EFBIG: ("a file grew past the file-size limit", "raise the limit (ulimit -f)"),
    errno.EROFS: ("the file system is read-only", "point the results folder at a writable one"),
    errno.EACCES: ("permission denied", "make the folder writable"),
    errno.EPERM: ("operation not permitted", "make the folder writable"),
}
"""OSErrors of the disk a user can fix, as (what happened, what to do): one line each, never a traceback."""


if __name__ == "__main__":
    sys.exit(main())
