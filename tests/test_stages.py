"""The stage table owns every path: inputs resolve to a producer's output, templates use exactly the stage's
wildcards, no two outputs or logs collide, and the jobs a stage runs follow the config's names."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from blindspot.config import load_config
from blindspot.stages.aggregate.layout import INPUTS, aggregate_slice, input_paths
from blindspot.stages.staging import staged_paths
from blindspot.stages.table import STAGES, RunNames, output_path

REPO = Path(__file__).resolve().parents[1]


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_input_is_an_earlier_stages_output() -> None:
    order = list(STAGES)
    for stage in STAGES.values():
        for item in stage.inputs:
            assert item.stage in STAGES, f"{stage.name}.{item.name}: no stage '{item.stage}'"
            assert order.index(item.stage) < order.index(stage.name), f"{stage.name} reads a later stage"
            assert STAGES[item.stage].output(item.output).template == stage.input_template(item.name)


@pytest.mark.parametrize("name", list(STAGES))
def test_templates_use_exactly_the_stages_wildcards(name: str) -> None:
    stage = STAGES[name]
    for output in stage.outputs:
        assert fields(output.template) == set(stage.wildcards), output
    for item in stage.inputs:  # an input is keyed by a subset of the consumer's wildcards (items: by bench only)
        assert fields(stage.input_template(item.name)) <= set(stage.wildcards), item
    assert fields(stage.log_template) == set(stage.wildcards)


def test_no_two_outputs_or_logs_share_a_path() -> None:
    templates = [o.template for stage in STAGES.values() for o in stage.outputs]
    assert len(templates) == len(set(templates))
    logs = [stage.log_template for stage in STAGES.values()]
    assert len(logs) == len(set(logs))


def test_a_job_has_one_path_per_input_and_output() -> None:
    paths = STAGES["decay"].paths("out", {"model": "qwen", "bench": "pope"})
    assert paths == {
        "predictions": Path("out/predictions/qwen/pope.parquet"),
        "item_table": Path("out/staged/pope/items.parquet"),
        "metrics": Path("out/decay/qwen/pope.parquet"),
        "classes": Path("out/decay/qwen/pope.items.parquet"),
        "manifest": Path("out/decay/qwen/pope.manifest.json"),
    }
    assert output_path("out", "render", "store", bench="pope") == Path("out/render/pope.zarr")
    assert STAGES["render"].output("store").directory and not STAGES["decay"].output("metrics").directory
    with pytest.raises(KeyError, match="no output 'nope'"):
        STAGES["decay"].output("nope")


def test_jobs_range_over_the_configs_names() -> None:
    names = RunNames(models=("a", "b"), benchmarks=("x", "y"), pairs=("p",), patch_models=("b",))
    assert STAGES["stage"].jobs(names) == [{"bench": "x"}, {"bench": "y"}]
    assert STAGES["predict"].jobs(names) == [
        {"model": "a", "bench": "x"},
        {"model": "a", "bench": "y"},
        {"model": "b", "bench": "x"},
        {"model": "b", "bench": "y"},
    ]
    assert STAGES["patch"].jobs(names) == [{"model": "b", "bench": "x"}, {"model": "b", "bench": "y"}]
    assert STAGES["swap"].jobs(names) == [{"pair": "p", "bench": "x"}, {"pair": "p", "bench": "y"}]


def test_the_aggregate_reads_the_stage_tables_paths() -> None:
    config = load_config(REPO / "config" / "config.yaml")
    found = input_paths(aggregate_slice(config), "res")
    names = RunNames.of(config)
    for kind, (stage, output) in INPUTS.items():
        expected = [output_path("res", stage, output, **job) for job in STAGES[stage].jobs(names)]
        assert found[kind] == expected and expected, kind
    assert found["patches"] == [Path(f"res/patches/{m}/toy.parquet") for m in sorted(config.patch.models)]


def test_scripts_stage_into_the_workflows_file_names() -> None:
    assert staged_paths("f") == {
        name: Path("f") / Path(path).name for name, path in STAGES["stage"].paths("", {"bench": "b"}).items()
    }
    assert staged_paths("f")["item_table"] == Path("f/items.parquet")
