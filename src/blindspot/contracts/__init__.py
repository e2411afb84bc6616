"""The vocabulary several stages share: conditions and their keys, option letters and numbers, outcome values,
and the schemas of the tables stages pass to each other.

Stage modules import from here, never from one another. Nothing here imports a stage, a model or a benchmark.
"""
