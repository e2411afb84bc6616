"""The paper's run planned on G GPUs: wall time of every predict job, unsplit or split (``shards: auto``).

Each (model, benchmark) predict job runs ``items x 15`` units (8 blur, 4 pixelate, blank, noise, no image) at the
model's throughput (units/s, one GPU) plus a model load; split, a benchmark's job becomes ``ceil(rows / 2000)``
parts, each with its own model load, and one gather. Jobs go to GPUs longest first (LPT list scheduling, what a
cluster's backfill comes close to); the wall time is the last GPU's finish.
"""

from __future__ import annotations

import heapq

from blindspot.benchmarks import get_benchmark
from blindspot.config import auto_shards

PAPER_ADAPTERS = ("repope", "textvqa", "mmbench", "ai2d", "cvbench", "scienceqa", "mmstar", "vlmbias",
                  "hallusionbench", "mmmu", "hrbench", "vstar")  # fmt: skip
CONDITIONS = 15
ASSUMED_RATES = {"qwen2_5_vl_3b": 20.0, "qwen2_5_vl_7b": 10.0, "llava_v1_6_mistral_7b": 3.0}
"""Units (generations) per second on one GPU: the README's assumption, until bench/scale.py --full measures them."""


def jobs(rates: dict[str, float], split: bool, items_per_job: int, load_s: float) -> list[float]:
    """Seconds of every GPU job of the run (a gather is a CPU job: :func:`plan_table` adds its seconds at the
    end)."""
    out = []
    for rate in rates.values():
        for adapter in PAPER_ADAPTERS:
            items = get_benchmark(adapter).items or 0
            parts = auto_shards(items, items_per_job) if split else 1
            out += [items / parts * CONDITIONS / rate + load_s] * parts
    return out


def makespan(durations: list[float], gpus: int) -> float:
    """Longest-first list scheduling of ``durations`` on ``gpus``: the last finish."""
    finish = [0.0] * gpus
    heapq.heapify(finish)
    for duration in sorted(durations, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + duration)
    return max(finish)


def plan_table(rates: dict[str, float], source: str, items_per_job: int = 2000, load_s: float = 60.0,
               gather_s: float = 30.0) -> str:  # fmt: skip
    lines = [f"the paper's predict stage, 3 models x 12 benchmarks x 15 conditions, {source}:",
             f"{'GPUs':>5} {'unsplit':>10} {'split (auto)':>13} {'speed-up':>9}"]  # fmt: skip
    for gpus in (1, 8, 32):
        whole = makespan(jobs(rates, False, items_per_job, load_s), gpus) / 3600
        split = (makespan(jobs(rates, True, items_per_job, load_s), gpus) + gather_s) / 3600
        lines.append(f"{gpus:>5} {whole:>9.1f}h {split:>12.1f}h {whole / split:>8.2f}x")
    extra = len(jobs(rates, True, items_per_job, load_s)) - len(jobs(rates, False, items_per_job, 0))
    lines.append(f"split overhead: {extra} extra model loads ({extra * load_s / 3600:.2f} GPU-hours at {load_s:.0f} s "
                 f"each) and one {gather_s:.0f} s gather per split job")  # fmt: skip
    return "\n".join(lines)
