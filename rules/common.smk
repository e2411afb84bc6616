# Shared helpers: config validation, each rule's config slice and command (from the stage table in
# blindspot.stages.table), input functions and target lists. The logic lives in blindspot.*.
import os
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


wildcard_constraints:
    bench="|".join(BENCHMARKS),
    model="|".join(MODELS) or "(?!)",
    pair="|".join(PAIRS) or "(?!)",


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


def cli(stage):
    """The rule's shell command: `blindspot <stage>` with its wildcards, slice, inputs, outputs and log."""
    return STAGES[stage].cli_command()


def benchmark_files(wildcards):
    """A benchmark's source files (a file, or every shard of a folder): rewriting one re-stages it."""
    return CFG.benchmarks[wildcards.bench].input_files()


def model_gpus(wildcards):
    """The GPUs a model's job requests (`models.<name>.gpu`; above 1 the model is spread over them)."""
    return CFG.models[wildcards.model].gpu


def pair_gpus(wildcards):
    """A swap job loads its base (the donor's tensors go beside each swapped parameter): the base's `gpu`."""
    return CFG.models[CFG.swap.pairs[wildcards.pair].base].gpu


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
