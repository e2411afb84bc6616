"""Benchmark staging: adapters turn published benchmark files into one canonical items table."""
