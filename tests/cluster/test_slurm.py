"""The demo workflow on a real SLURM: a single-node cluster on localhost (tests/cluster/start-slurm.sh) runs the
reduced toy world through workflow/profiles/slurm with the benchmark split in two (`shards: 2`), every non-local
job goes through sbatch with the resources the config gives it, the two parts of a split job run side by side, and
the outputs equal an unsplit local run's. Where the packages are missing and cannot be installed (no root or
sudo, no apt-get), the test skips and says why; once installed, a cluster that does not start is a failure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO, reduced_toy_config, run_snakemake, write_config

# Overrides a real cluster does not need: no accounting daemon here, so no account and squeue for status.
LOCAL_CLUSTER = [
    "--slurm-status-command",
    "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks",
    "2",
]
CANNOT_INSTALL = 3
"""start-slurm.sh's exit status when the packages are missing and cannot be installed here."""
SUBMITTED = ("stage", "render", "predict_part", "predict_gather", "extract_part", "extract_gather", "probe",
             "patch_part", "patch_gather")  # fmt: skip
LOCAL = ("decay", "aggregate")


def prepare(workdir: Path, config: dict) -> None:
    workdir.mkdir()
    write_config(workdir, config)
    blindspot = Path(sys.executable).parent / "blindspot"
    subprocess.run(
        [str(blindspot), "toy-data", "--config", "config.yaml", "--out", "data/toy"], cwd=workdir, check=True
    )


@pytest.mark.slow
@pytest.mark.extended
def test_the_demo_through_the_slurm_profile_equals_a_local_run(tmp_path: Path) -> None:
    start = subprocess.run([str(REPO / "tests" / "cluster" / "start-slurm.sh")], capture_output=True, text=True)
    if start.returncode == CANNOT_INSTALL:
        pytest.skip(start.stderr.strip().splitlines()[-1])
    assert start.returncode == 0, f"SLURM did not start:\n{start.stdout}\n{start.stderr}"

    config = reduced_toy_config(["qwen_base"])
    config["toy"]["n_items"] = 120
    # Two cores and two (fake) GPUs: each job asks for one core, so the two parts of a split job fit side by side.
    config["resources"] = {"default": {"runtime": 30, "mem_mb": 1000, "cpus_per_task": 1}, "stages": {}}
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    prepare(local, config)
    prepare(cluster, config | {"benchmarks": {"toy": config["benchmarks"]["toy"] | {"shards": 2}}})
    run_snakemake(local, "--cores", "2", "--resources", "gpu=1")
    result = run_snakemake(cluster, "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"), *LOCAL_CLUSTER)
    log = result.stdout + result.stderr

    # Every job of a cluster rule went through sbatch (the plugin names the SLURM job id and its log per job);
    # the local rules did not.
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", log)
    rules = {rule for _, rule in submitted}
    assert set(SUBMITTED) <= rules, log[-3000:]
    assert not rules & set(LOCAL), f"local rules were submitted: {rules & set(LOCAL)}"
    assert len({job for job, _ in submitted}) == len(submitted)

    # The config's resources reached sbatch, and the parts of a split job ran side by side (SLURM's own record of
    # each job's start and end: scontrol keeps finished jobs for MinJobAge, 300 s by default).
    spans = {}
    for job, rule in submitted:
        if rule == "predict_part":
            shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
            start, end = re.search(r"StartTime=(\S+)", shown), re.search(r"EndTime=(\S+)", shown)
            assert start and end, shown
            assert "TimeLimit=00:30:00" in shown and "MinMemoryNode=1000M" in shown, shown  # the config's resources
            spans[job] = (start.group(1), end.group(1))
    print("predict parts (SLURM start, end):", spans)
    (_, a_end), (b_start, _) = sorted(spans.values())
    assert b_start < a_end, f"the two predict parts did not overlap: {spans}"

    # The outputs equal the local run's.
    def table(root: Path, name: str) -> pl.DataFrame:
        return pl.read_parquet(root / "results" / name)

    names = ["staged/toy/items.parquet", "predictions/qwen_base/toy.parquet", "decay/qwen_base/toy.parquet",
             "patches/qwen_base/toy.items.parquet",
             "decay/qwen_base/toy.items.parquet", "probes/qwen_base/toy.parquet", "patches/qwen_base/toy.parquet",
             "tables/summary.parquet", "tables/decay.parquet"]  # fmt: skip
    for name in names:
        assert table(local, name).equals(table(cluster, name)), f"{name} differs between the local and SLURM runs"
    assert (cluster / "results" / "report.html").is_file()
