# Shared helpers: config validation, each rule's config slice and command (from the stage table in
# blindspot.stages.table), input functions and target lists. The logic lives in blindspot.*.
import os
import re
import sys

from blindspot.stages.aggregate.layout import INPUTS, aggregate_slice, input_paths, output_kinds, output_paths
from blindspot.config import (
    ConfigError,
    parse_config,
    path_problems,
    read_config_yaml,
    results_problem,
    with_command_line_types,
)
from blindspot.conda_env import set_repository_root
from blindspot.store.provenance import canonical_json
from blindspot.contracts.parts import PART_PATTERN
from blindspot.stages.table import STAGES, STORE_ROOT


envvars:
    "PATH",


# Rules call the `blindspot` CLI. Make the one installed beside this Snakemake (e.g. .venv/bin) findable even
# when the venv is not activated; with --software-deployment-method conda the env's own bin still comes first.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
# envs/blindspot.yaml installs the package from ${BLINDSPOT_ROOT}: Snakemake copies the env file elsewhere before
# creating the environment, so it cannot name the repository by a relative path.
set_repository_root(workflow.basedir)


def _fail(lines):
    if lines:
        for line in lines:
            print(f"config error: {line}", file=sys.stderr)
        sys.exit(1)


try:
    for _file in workflow.configfiles:  # Snakemake keeps the last of a key written twice; we refuse it
        read_config_yaml(_file)
    # --config values arrive as strings: read them with their YAML types (a config file stays strict)
    CFG = parse_config(with_command_line_types(config, workflow.config_settings.overwrite_config or {}))
except ConfigError as error:
    _fail(str(error).splitlines())
if (_problem := results_problem(CFG.results)) is not None:  # where Snakemake itself writes: always checked
    _fail([f"results: {_problem}"])
if CFG.check_paths:
    _fail(path_problems(CFG))

RESULTS = CFG.results
"""The results folder (`results:` in the config): every output path below starts with it."""


def R(path):
    """An output path inside the results folder."""
    return os.path.join(RESULTS, path)


BENCHMARKS = sorted(CFG.benchmarks)
MODELS = sorted(CFG.models)
PAIRS = sorted(CFG.swap.pairs)


def one_of(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    bench=one_of(BENCHMARKS),
    model=one_of(MODELS),
    pair=one_of(PAIRS),
    part=PART_PATTERN,


SHARDS = {bench: CFG.shards_for(bench) for bench in BENCHMARKS}
"""How many jobs each model-running job of a benchmark is split into (`shards:`; blindspot.contracts.parts)."""
SPLIT = one_of([bench for bench in BENCHMARKS if SHARDS[bench] > 1])
"""The benchmarks whose splittable stages run as parts and a gather (the <stage>_part and <stage>_gather rules)."""
WHOLE = one_of([bench for bench in BENCHMARKS if SHARDS[bench] == 1])
"""The benchmarks whose splittable stages run as one job (the stage's own rule)."""


def slice_param(stage):
    """The rule's `params: slice`: the stage's config slice as JSON (a change reruns exactly its jobs)."""

    def param(wildcards):
        return STAGES[stage].slice_json(CFG, {key: getattr(wildcards, key) for key in wildcards.keys()})

    return param


def stage_inputs(stage):
    """The rule's named inputs: each is its producer's output path (the stage table, blindspot.stages.table); a
    Zarr store by its root metadata file."""
    return {name: R(template) for name, template in STAGES[stage].rule_templates()[0].items()}


def stage_outputs(stage):
    """The rule's named outputs, from the stage table; a Zarr store by its root metadata file (no Snakemake marker
    inside the store; a store whose root metadata is gone is rebuilt)."""
    return {name: R(template) for name, template in STAGES[stage].rule_templates()[1].items()}


def stage_params(stage):
    """The rule's params: its config slice, and the folder of each store it reads or writes (the CLI takes the
    folder; the rule declares the store's root metadata file)."""

    def folder(kind, name):
        return lambda wildcards, input, output: os.path.dirname(getattr(input if kind == "input" else output, name))

    params = {"slice": slice_param(stage)}
    params |= {param: folder(kind, name) for param, (kind, name) in STAGES[stage].store_params().items()}
    return params


def stage_log(stage):
    """One log per job: results/logs/<stage>/<wildcards>.log."""
    return R(STAGES[stage].log_template)


def stage_benchmark(stage):
    """Snakemake's timing and memory of each job: results/benchmarks/<stage>/<wildcards>.tsv."""
    return R(STAGES[stage].benchmark_template)


def cli(stage, part=False):
    """The rule's shell command: `blindspot <stage>` with its wildcards, slice, inputs, outputs and log (`part`:
    with the part a split job runs)."""
    return STAGES[stage].cli_command(part=part)


def gather_cli(stage):
    """The gather rule's shell command: `blindspot gather <stage>` with every part of each output, in order."""
    return STAGES[stage].gather_command()


def benchmark_files(wildcards):
    """A benchmark's source files (a file, or every shard of a folder): rewriting one re-stages it."""
    return CFG.benchmarks[wildcards.bench].input_files()


def job_model(stage, wildcards):
    """The model whose weights a job loads (a swap job: its pair's base; the donor's tensors go beside each
    swapped parameter), or None for a job that loads none."""
    kind = STAGES[stage].weights
    if kind == "model":
        return wildcards.model
    if kind == "pair":
        return CFG.swap.pairs[wildcards.pair].base
    return None


def stage_resources(stage, job=None):
    """The rule's resources, from the config's `resources` (default, the stage, the model): runtime, mem_mb,
    cpus_per_task, gpu (the model's `gpu` for a job that loads it) and gres. `job="gather"`: a split job's gather."""

    def value(key):
        def get(wildcards):
            if job == "gather":
                merged = CFG.resources_for("gather")
            else:
                merged = CFG.resources_for(stage, job_model(stage, wildcards))
            return merged.get(key, "" if key == "gres" else 0)

        return get

    return {key: value(key) for key in ("runtime", "mem_mb", "cpus_per_task", "gpu", "gres")}


def stage_weights(stage):
    """The rule's weight files (a local model directory's: retraining in place reruns its jobs), where the stage
    loads a model (the stage table's `weights`)."""
    kind = STAGES[stage].weights
    return {"model": {"weights": model_files}, "pair": {"weights": pair_files}}.get(kind, {})


def part_outputs(stage):
    """A split job's part outputs (`parts/{part}/...`): temporary, removed once gathered."""
    return {name: temp(R(template)) for name, template in STAGES[stage].rule_templates(part=True)[1].items()}


def every_part(stage, template, wildcards):
    """A part template's path for each part of a job, in order: the benchmark's `shards` of them."""
    count = SHARDS[wildcards.bench]
    values = {w: getattr(wildcards, w) for w in STAGES[stage].wildcards}
    return [R(template.format(part=f"{k}-of-{count}", **values)) for k in range(1, count + 1)]


def gather_params(stage):
    """The gather's params: the slice, the stores it reads, and each output's parts in order (a store by its
    folder)."""
    spec = STAGES[stage]

    def parts_of(name):
        return lambda wildcards: every_part(stage, spec.part_template(spec.output(name).template), wildcards)

    return stage_params(stage) | {f"{name}_parts": parts_of(name) for name in spec.output_names}


def gather_inputs(stage):
    """The gather's inputs: the stage's own, and every part of each output (a store by its root metadata)."""
    declared = STAGES[stage].rule_templates(part=True)[1].values()
    return stage_inputs(stage) | {
        "parts": lambda wildcards: [path for template in declared for path in every_part(stage, template, wildcards)]
    }


def split_log(stage, job):
    return R(STAGES[stage].split_log_template(job))


def split_benchmark(stage, job):
    return R(STAGES[stage].split_benchmark_template(job))


def model_files(wildcards):
    """A local model directory's files (weights, config, tokenizer): retraining in place reruns its jobs."""
    return CFG.models[wildcards.model].weight_files()


def pair_files(wildcards):
    """A swap pair's files: the base's and the donor's (or the LoRA adapter's); retraining either reruns it."""
    pair = CFG.swap.pairs[wildcards.pair]
    files = CFG.models[pair.base].weight_files()
    if pair.donor is not None:
        files += CFG.models[pair.donor].weight_files()
    elif os.path.isdir(pair.adapter):
        files += sorted(os.path.join(pair.adapter, f) for f in os.listdir(pair.adapter) if not f.startswith("."))
    return files


AGGREGATE = aggregate_slice(CFG)


def aggregate_inputs():
    """Every stage output the aggregate reads (blindspot.stages.aggregate.layout), by kind; a store by its root
    metadata file."""
    stores = {kind for kind, (stage, output) in INPUTS.items() if STAGES[stage].output(output).directory}
    return {
        kind: [os.path.join(str(p), STORE_ROOT) if kind in stores else str(p) for p in paths]
        for kind, paths in input_paths(AGGREGATE, RESULTS).items()
    }


_CAPTIONS = {
    "csv_decay": ("decay.rst", "Tables"),
    "csv_summary": ("summary.rst", "Tables"),
    "csv_probes": ("stacked.rst", "Tables"),
    "csv_swaps": ("stacked.rst", "Tables"),
    "csv_patches": ("stacked.rst", "Tables"),
    "csv_lens": ("stacked.rst", "Tables"),
    "csv_knockouts": ("stacked.rst", "Tables"),
    "csv_provenance": ("provenance.rst", "Tables"),
    "results_json": ("results_json.rst", "Tables"),
    "plot_decay": ("plot_decay.rst", "Decay"),
    "plot_c_rate": ("plot_c_rate.rst", "Decay"),
    "plot_classes": ("plot_classes.rst", "Decay"),
    "plot_probes": ("plot_probes.rst", "Probes"),
    "plot_swaps": ("plot_swaps.rst", "Swaps"),
    "plot_patches": ("plot_patches.rst", "Patching"),
    "plot_lens": ("plot_lens.rst", "Lens and attention"),
    "plot_knockout": ("plot_knockout.rst", "Knockout"),
    "report": ("report_html.rst", "Report"),
}
"""Output kind -> (caption file in workflow/report, report category); SVG twins of the PNGs and the Parquet twins of
the CSV tables are not listed (Snakemake's report shows a CSV as a table, a Parquet file only as bytes)."""


def aggregate_outputs():
    """The aggregate's tables, plots and report.html; all but the SVG twins are marked for `snakemake --report`."""
    kinds = output_kinds(AGGREGATE)
    outputs = {}
    for name, path in output_paths(AGGREGATE, RESULTS).items():
        if kinds[name] in _CAPTIONS:
            caption, category = _CAPTIONS[kinds[name]]
            outputs[name] = report(str(path), caption=f"../workflow/report/{caption}", category=category)
        else:
            outputs[name] = str(path)
    return outputs


def all_targets():
    """The report and every stage output the aggregate reads (so `snakemake` builds the whole run)."""
    targets = [str(output_paths(AGGREGATE, RESULTS)["report"])]
    return targets + [path for paths in aggregate_inputs().values() for path in paths]
