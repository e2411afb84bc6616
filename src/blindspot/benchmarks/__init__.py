"""Benchmarks, one unit each: config, reader, prompt, parse, score, official aggregate (see ``registry``).

Importing this package registers every benchmark module below: the ``generic`` one, described in config, and
the published benchmarks, each read from its download folder (``published``).
"""

from blindspot.benchmarks import (
    ai2d,
    cvbench,
    generic,
    hallusionbench,
    hrbench,
    mmbench,
    mmmu,
    mmstar,
    pope,
    scienceqa,
    textvqa,
    vlmbias,
    vstar,
)
from blindspot.benchmarks.registry import BenchmarkSpec, get_benchmark, registered

__all__ = [
    "BenchmarkSpec",
    "ai2d",
    "cvbench",
    "generic",
    "get_benchmark",
    "hallusionbench",
    "hrbench",
    "mmbench",
    "mmmu",
    "mmstar",
    "pope",
    "registered",
    "scienceqa",
    "textvqa",
    "vlmbias",
    "vstar",
]
