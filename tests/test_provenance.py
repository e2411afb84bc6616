"""Provenance stores the config as JSON: a slice that nests pydantic models is written as their JSON, the same
config gives the same hash, and nothing is silently turned into its Python repr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blindspot.config import DecayConfig
from blindspot.store.provenance import canonical_json, provenance, slice_hash


def test_nested_models_are_written_as_json() -> None:
    config = DecayConfig(bootstrap=50, coarse_families=["blank", "noise"])
    record = provenance("decay", {"decay": config, "seed": 3, "where": Path("a/b")})
    assert record["config"]["decay"] == config.model_dump(mode="json")  # a mapping, not "bootstrap=50 ..."
    assert record["config"]["where"] == "a/b" and record["config"]["seed"] == 3
    assert json.loads(json.dumps(record))["config"] == record["config"]
    assert slice_hash({"decay": config}) == slice_hash({"decay": config.model_dump(mode="json")})
    assert slice_hash({"decay": config}) != slice_hash({"decay": DecayConfig(bootstrap=51)})


def test_sets_and_numpy_scalars_are_plain_json_and_other_objects_are_refused() -> None:
    assert canonical_json({"b": {"y", "x"}, "a": np.float32(0.5)}) == '{"a":0.5,"b":["x","y"]}'
    with pytest.raises(TypeError, match="cannot write object"):
        canonical_json({"x": object()})
