"""The pipeline: the stage table and every stage, one module or package each, in the order they run.

- :mod:`~blindspot.stages.table` is the one place that says what each stage receives, reads, writes and runs;
  :mod:`~blindspot.stages.slices` holds the config slice each stage's jobs receive.
- :mod:`~blindspot.stages.staging` (``stage``): a benchmark's source into the canonical items, images and rejects.
- :mod:`~blindspot.stages.render` (``render``): every obfuscation family and level of every image, to Zarr.
- :mod:`~blindspot.stages.predict` (``predict``): one model's answers at every rendered condition.
- :mod:`~blindspot.stages.decay` (``decay``): decay metrics, item classes and the vision-indispensable manifest.
- :mod:`~blindspot.stages.extract` (``extract``): per-layer hidden states, to Zarr.
- :mod:`~blindspot.stages.probe` (``probe``): layer-wise probes of the hidden states.
- :mod:`~blindspot.stages.swap` (``swap``): counterfactual weight swaps between checkpoints.
- :mod:`~blindspot.stages.patch` (``patch``): activation patching between conditions.
- :mod:`~blindspot.stages.aggregate` (``aggregate``): cross-model tables, plots and the HTML report.

A stage module imports the stage table, the storage layer (:mod:`blindspot.store`) and the libraries
(``models``, ``benchmarks``, ``answers``, ``contracts``, ...), never another stage (``tests/test_architecture.py``).
Importing this package imports nothing: building the Snakemake DAG reads the table without loading any stage.
"""
