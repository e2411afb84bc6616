"""Split jobs: blocks and parts (blindspot.contracts.parts), the gather, and the workflow's split rules.

The identity test runs predict, extract and patch on the toy world unsplit and split 2, 3 and 7 ways and requires
the gathered outputs to equal the unsplit ones, provenance aside."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
import zarr
from conftest import REPO, generic_entry, reduced_toy_config, run_snakemake, slice_json, stage_entry, write_config

from blindspot.contracts.parts import Part, item_blocks, part_items
from blindspot.errors import InputError
from blindspot.stages.table import STAGES, JobContext
from blindspot.store.parts import gathered_record

# ------------------------------------------------------------------------------------------------ blocks and parts


def random_groups(rng: random.Random, n: int) -> list[str]:
    """Image groups as benchmarks have them: runs of questions on one image, and a few images asked again later."""
    groups: list[str] = []
    while len(groups) < n:
        groups += [f"g{len(groups)}"] * rng.choice([1, 1, 2, 4])
        if groups and rng.random() < 0.05:
            groups.append(rng.choice(groups))  # an image asked again, not next to its other questions
    return groups[:n]


def test_blocks_cover_every_item_in_order_and_never_split_an_image() -> None:
    rng = random.Random(0)
    for _ in range(200):
        groups = random_groups(rng, rng.randint(1, 80))
        target = rng.randint(1, 12)
        blocks = item_blocks(groups, target)
        assert [p for block in blocks for p in block] == list(range(len(groups)))
        owner = {}
        for b, block in enumerate(blocks):
            for p in block:
                assert owner.setdefault(groups[p], b) == b, "an image's items in two blocks"
        assert all(len(block) >= target for block in blocks[:-1])


def test_parts_are_contiguous_balanced_runs_of_the_same_blocks_for_any_count() -> None:
    rng = random.Random(1)
    for _ in range(200):
        groups = random_groups(rng, rng.randint(1, 120))
        target = rng.randint(1, 10)
        blocks = item_blocks(groups, target)
        largest = max(map(len, blocks))
        for count in (1, 2, 3, 7):
            parts = [part_items(groups, target, Part(k, count)) for k in range(1, count + 1)]
            assert [b for part in parts for b in part] == blocks  # whole blocks, in order, each once
            sizes = [sum(map(len, part)) for part in parts]
            assert max(sizes) <= len(groups) / count + largest  # a part holds its share and at most one block more
            if largest <= len(groups) / count:  # no part is left empty unless a block is wider than a share
                assert min(sizes) > 0


def test_a_part_label_is_checked() -> None:
    assert Part.parse("2-of-3") == Part(2, 3) and Part(2, 3).label == "2-of-3"
    for bad in ("0-of-3", "4-of-3", "2of3", "-1-of-2", "1-of-0"):
        with pytest.raises(ValueError):
            Part.parse(bad)


def test_the_gather_refuses_missing_reordered_or_foreign_parts() -> None:
    records = [{"stage": "predict", "config_hash": "a", "part": f"{k}-of-3", "host": "h"} for k in (1, 2, 3)]
    paths = ["p1", "p2", "p3"]
    gathered = gathered_record(records, paths)
    assert "part" not in gathered and gathered["gathered"]["parts"] == 3
    with pytest.raises(InputError, match="part 2-of-3 where part 1-of-2"):
        gathered_record(records[1:], paths[1:])
    with pytest.raises(InputError, match="part 3-of-3 where part 2-of-3"):
        gathered_record([records[0], records[2], records[1]], paths)
    with pytest.raises(InputError, match="another stage or config slice"):
        gathered_record([records[0], records[1] | {"config_hash": "b"}, records[2]], paths)


# ------------------------------------------------------------------------------------------------ the identity test


@pytest.fixture(scope="module")
def toy_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """48 toy items (images asked in groups of 4, as POPE asks), staged and rendered at two blur levels."""
    from blindspot.config import RenderConfig
    from blindspot.stages.render.run import render_benchmark
    from blindspot.toy.items import write_toy_benchmark

    root = tmp_path_factory.mktemp("toy")
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    source = write_toy_benchmark(root / "src", 48, config["toy"]["shares"], seed=3, shared=0.5, per_image=4)
    entry = config["benchmarks"]["toy"] | {"path": str(source)}
    stage_entry("toy", generic_entry(source, **{k: v for k, v in entry.items() if k != "path"}), root / "staged")
    render = RenderConfig.model_validate(
        {
            "resize": {"longest_side": 112, "multiple_of": 28},
            "blur": {"kernels": [1, 25]},
            "pixelate": {"enabled": False},
        }
    )
    render_benchmark(root / "staged" / "images.parquet", render, 0, root / "toy.zarr", workers=1, progress=False)
    model = {"adapter": "qwen2_5_vl", "path": str(REPO / config["models"]["qwen_base"]["path"]), "batch_size": 5,
             "max_new_tokens": 1}  # fmt: skip
    return {"inputs": {"item_table": root / "staged" / "items.parquet", "render": root / "toy.zarr"}, "model": model,
            "root": root}  # fmt: skip


SPLIT_SLICES = {
    "predict": {"predict": {"shard_size": 20}},
    "extract": {"extract": {"chunk_bytes": 1200, "full_items": 6, "max_tokens": 8}},
    "patch": {"seed": 0, "patch": {"models": ["m"], "pairs": ["blur/0->blur/1"], "positions": ["last", "image"],
                                   "shard_size": 5, "bootstrap": 50}},
}  # fmt: skip


def run_split(stage: str, world: dict[str, Any], count: int, folder: Path) -> dict[str, Path]:
    spec = STAGES[stage]
    config = spec.parse_slice(slice_json(stage, model=world["model"], prompt={}, **SPLIT_SLICES[stage]))
    job = {"model": "m", "bench": "toy"}

    def outputs(where: Path) -> dict[str, Path]:
        return {o.name: where / Path(o.template.format(**job)).name for o in spec.outputs}

    parts = []
    for k in range(1, count + 1):
        paths = outputs(folder / f"part-{k}")
        spec.load_runner()(config, world["inputs"], paths, JobContext(stage, job, progress=False, part=Part(k, count)))
        parts.append(paths)
    if count == 1:
        return parts[0]
    final = outputs(folder / "gathered")
    spec.load_gatherer()(config, world["inputs"], parts, final, JobContext(stage, job))
    return final


def assert_same_content(a: Path, b: Path) -> None:
    """Tables: equal rows and columns; stores: equal arrays (dtype, shape, chunks, NaN where NaN) and attributes;
    provenance aside."""
    if a.suffix == ".parquet":
        left, right = pq.read_table(a), pq.read_table(b)
        assert left.replace_schema_metadata(None).equals(right.replace_schema_metadata(None)), f"{b} differs from {a}"
        return
    left, right = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert sorted(left.array_keys()) == sorted(right.array_keys())
    for name in left.array_keys():
        x, y = left[name], right[name]
        assert (x.dtype, x.shape, x.chunks) == (y.dtype, y.shape, y.chunks), name
        assert np.array_equal(x[:], y[:], equal_nan=x.dtype.kind == "f"), f"{name} differs"
    assert {k: v for k, v in left.attrs.items() if k != "provenance"} == {
        k: v for k, v in right.attrs.items() if k != "provenance"
    }


@pytest.mark.parametrize("stage", ["predict", "extract", "patch"])
def test_split_outputs_equal_the_unsplit_ones_for_any_count(stage: str, toy_world: dict[str, Any]) -> None:
    root = toy_world["root"] / stage
    whole = run_split(stage, toy_world, 1, root / "n1")
    for count in (2, 3, 7):
        split = run_split(stage, toy_world, count, root / f"n{count}")
        for name, path in whole.items():
            assert_same_content(path, split[name])
    if stage == "predict":  # more than one block, so the parts really differ
        assert pq.read_table(whole["predictions"]).num_rows > 3 * 20


# ------------------------------------------------------------------------------------------------ the workflow


def split_config(tmp_path: Path, source: Path, shards: int) -> list[str]:
    """The reduced toy world with one model, patched; returns the split stages' outputs as targets."""
    config = reduced_toy_config(["qwen_base"])
    config["toy"]["n_items"] = 48
    config["benchmarks"]["toy"]["path"] = str(source)
    config["benchmarks"]["toy"]["shards"] = shards
    config["results"] = str(tmp_path / "results")
    config["predict"]["shard_size"] = 64
    write_config(tmp_path, config)
    results = tmp_path / "results"
    return [str(results / "predictions/qwen_base/toy.parquet"), str(results / "hidden/qwen_base/toy.zarr/zarr.json"),
            str(results / "patches/qwen_base/toy.parquet")]  # fmt: skip


def jobs_run(result: Any) -> dict[str, int]:
    """Rule -> jobs run, from Snakemake's job stats table."""
    counts: dict[str, int] = {}
    lines = (result.stdout + result.stderr).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line)
    for line in lines[start + 2 :]:
        name, _, count = line.partition(" ")
        if name == "total" or not count.strip().isdigit():
            break
        counts[name] = int(count)
    return counts


def test_changing_the_split_reruns_only_the_split_jobs_and_a_killed_part_reruns_alone(tmp_path: Path) -> None:
    from blindspot.toy.items import write_toy_benchmark

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    source = write_toy_benchmark(tmp_path / "toy", 48, config["toy"]["shares"], seed=0, shared=0.4)
    targets = split_config(tmp_path, source, 1)
    run_snakemake(tmp_path, "--cores", "2", *targets)
    whole = tmp_path / "whole"
    for i, target in enumerate(targets):
        path = Path(target.removesuffix("/zarr.json"))
        copy = whole / str(i) / path.name
        copy.parent.mkdir(parents=True)
        shutil.copytree(path, copy) if path.is_dir() else shutil.copy(path, copy)
    targets = split_config(tmp_path, source, 2)
    plan = run_snakemake(tmp_path, "--cores", "2", "-n", *targets)
    assert jobs_run(plan) == {"extract_gather": 1, "extract_part": 2, "patch_gather": 1, "patch_part": 2,
                              "predict_gather": 1, "predict_part": 2}  # fmt: skip
    # part 1 finishes and part 2 is killed before it does: the rerun runs part 2 and the gather only
    part1 = tmp_path / "results/parts/1-of-2/predictions/qwen_base/toy.parquet"
    run_snakemake(tmp_path, "--cores", "2", "--notemp", str(part1))
    rerun = run_snakemake(tmp_path, "--cores", "2", "-n", targets[0])
    assert jobs_run(rerun) == {"predict_gather": 1, "predict_part": 1}
    run_snakemake(tmp_path, "--cores", "2", *targets)
    for i, target in enumerate(targets):
        path = Path(target.removesuffix("/zarr.json"))
        assert_same_content(whole / str(i) / path.name, path)
    assert not (tmp_path / "results/parts/2-of-2/predictions/qwen_base/toy.parquet").exists()  # gathered: removed


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"benchmarks": {"toy": {"shards": 0}}}, "benchmarks.toy.shards: shards must be a positive number of jobs"),
        ({"benchmarks": {"toy": {"shards": "many"}}}, "benchmarks.toy.shards: shards must be a positive number"),
        ({"benchmarks": {"toy": {"shards": True}}}, "benchmarks.toy.shards: shards must be a positive number"),
        ({"resources": {"default": {"gres": "gpu 1"}}}, "resources.default.gres: gres must be <name>[:<type>]"),
        ({"resources": {"stages": {"predictt": {"runtime": 5}}}}, "resources.stages.predictt"),
        ({"split": {"items_per_job": 0}}, "split.items_per_job"),
    ],
)
def test_bad_split_and_resource_settings_are_one_line_naming_the_key(entry: dict[str, Any], expected: str) -> None:
    from blindspot.config import ConfigError, parse_config

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for section, value in entry.items():
        if section == "benchmarks":
            config["benchmarks"]["toy"] |= value["toy"]
        else:
            config[section] = value
    with pytest.raises(ConfigError) as error:
        parse_config(config)
    assert str(error.value).splitlines()[0].startswith(expected), str(error.value)
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("label", ["0-of-3", "4-of-3", "2of3"])
def test_a_bad_part_is_a_usage_error_not_a_traceback(label: str, capsys: pytest.CaptureFixture[str]) -> None:
    from blindspot.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["predict", "--model", "m", "--bench", "b", "--slice", "{}", "--item-table", "i", "--render", "r",
              "--predictions", "p", "--part", label])  # fmt: skip
    assert stop.value.code == 2
    assert "argument --part: part" in capsys.readouterr().err


def test_resources_reach_each_job_from_the_default_the_stage_and_the_model() -> None:
    from blindspot.config import parse_config

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["resources"] = {"default": {"runtime": 10, "mem_mb": 100}, "stages": {"predict": {"runtime": 20}}}
    config["models"]["qwen_base"]["resources"] = {"predict": {"mem_mb": 300, "gres": "gpu:a100:1"}}
    config["models"]["qwen_reader"]["gpu"] = 2
    parsed = parse_config(config)
    assert parsed.resources_for("predict", "qwen_base") == {"runtime": 20, "mem_mb": 300, "gres": "gpu:a100:1"}
    assert parsed.resources_for("predict", "qwen_reader") == {"gpu": 2, "runtime": 20, "mem_mb": 100}
    assert parsed.resources_for("decay") == {"gpu": 0, "runtime": 10, "mem_mb": 100}
