# Shared helpers: config validation, config slices for params, target lists. The logic lives in blindspot.*.
import os
import sys

from blindspot.config import ConfigError, parse_config
from blindspot import slices

envvars:
    "PATH",


# Rules call the `blindspot` CLI. Make the one installed beside this Snakemake (e.g. .venv/bin) findable even
# when the venv is not activated; with --software-deployment-method conda the env's own bin still comes first.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

try:
    CFG = parse_config(config)
except ConfigError as error:
    for line in str(error).splitlines():
        print(f"config error: {line}", file=sys.stderr)
    sys.exit(1)

BENCHMARKS = sorted(CFG.benchmarks)
MODELS = sorted(CFG.models)


wildcard_constraints:
    bench="|".join(BENCHMARKS),
    model="|".join(MODELS) or "(?!)",


def stage_slice_json(wildcards):
    return slices.to_json(slices.stage_slice(CFG, wildcards.bench))


def render_slice_json(wildcards):
    return slices.to_json(slices.render_slice(CFG))


def predict_slice_json(wildcards):
    return slices.to_json(slices.predict_slice(CFG, wildcards.model))


def decay_slice_json(wildcards):
    return slices.to_json(slices.decay_slice(CFG))


def extract_slice_json(wildcards):
    return slices.to_json(slices.extract_slice(CFG, wildcards.model))


def probe_slice_json(wildcards):
    return slices.to_json(slices.probe_slice(CFG))


def all_targets():
    targets = []
    for bench in BENCHMARKS:
        targets.append(f"results/staged/{bench}/items.parquet")
        targets.append(f"results/render/{bench}.zarr")
        for model in MODELS:
            targets.append(f"results/decay/{model}/{bench}.parquet")
            targets.append(f"results/probes/{model}/{bench}.parquet")
    return targets
