"""How outputs are written, read and verified; it imports nothing from the stages or the models.

- :mod:`~blindspot.store.atomic`: write to a temporary sibling, then rename (a killed job leaves no output that
  looks complete).
- :mod:`~blindspot.store.tables`: Parquet tables with their provenance, read with page checksums verified.
- :mod:`~blindspot.store.provenance`: the provenance record of every output, canonical JSON and config hashes.
- :mod:`~blindspot.store.arrays`: the Zarr v3 array helpers (checksummed chunks, completeness, damage as one line).
- :mod:`~blindspot.store.render`: the render store (every obfuscation family and level of every image).
- :mod:`~blindspot.store.hidden`: the hidden-state store (per-layer features per item and condition).
- :mod:`~blindspot.store.verify`: ``blindspot verify``, every output checked against its checksums.
"""
