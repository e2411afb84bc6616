# Shared helpers: config validation, config slices for params, target lists. The logic lives in blindspot.*.
import sys

from blindspot.config import ConfigError, parse_config
from blindspot import slices

try:
    CFG = parse_config(config)
except ConfigError as error:
    for line in str(error).splitlines():
        print(f"config error: {line}", file=sys.stderr)
    sys.exit(1)

BENCHMARKS = sorted(CFG.benchmarks)


wildcard_constraints:
    bench="|".join(BENCHMARKS),


def stage_slice_json(wildcards):
    return slices.to_json(slices.stage_slice(CFG, wildcards.bench))


def render_slice_json(wildcards):
    return slices.to_json(slices.render_slice(CFG))


def all_targets():
    targets = []
    for bench in BENCHMARKS:
        targets.append(f"results/staged/{bench}/items.parquet")
        targets.append(f"results/render/{bench}.zarr")
    return targets
