"""Benchmarks, one unit each: config, reader, prompt, parse, score, official aggregate (see ``registry``).

Importing this package registers every benchmark module below.
"""

from blindspot.benchmarks import generic
from blindspot.benchmarks.registry import BenchmarkSpec, get_benchmark, registered

__all__ = ["BenchmarkSpec", "generic", "get_benchmark", "registered"]
