"""The published benchmarks end to end on fixtures in their upstream layouts: staged through their real adapter,
rendered, answered by a tiny model, and scored by their official scorer; the prompts as published."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from published_data import BUILDERS, Fixture, struct
from pydantic import TypeAdapter

from blindspot.benchmarks import get_benchmark
from blindspot.benchmarks.registry import GENERIC_SCORING, BenchmarkScoring
from blindspot.config import (
    BenchmarkConfig,
    DecayConfig,
    ModelConfig,
    PredictConfig,
    PromptConfig,
    RenderConfig,
    parse_config,
)
from blindspot.errors import InputError
from blindspot.images import sha256_hex
from blindspot.models.inference import Response
from blindspot.stages.decay import decay_benchmark
from blindspot.stages.predict import predict_benchmark
from blindspot.stages.render.run import render_benchmark
from blindspot.stages.staging import stage_benchmark, staged_paths
from blindspot.stages.table import STAGES

RENDER = RenderConfig.model_validate(
    {
        "resize": {"longest_side": 56},
        "blur": {"kernels": [1, 25]},
        "pixelate": {"enabled": False},
        "noise": {"enabled": False},
    }
)
OFFICIAL = {
    "pope": {"accuracy", "precision", "recall", "f1", "yes_ratio"},
    "repope": {"accuracy", "precision", "recall", "f1", "yes_ratio"},
    "hrbench": {"average", "single", "cross"},
    "hallusionbench": {"aAcc", "fAcc", "qAcc"},
    "vstar": {"accuracy"},
    "vlmbias": {"accuracy", "bias_ratio"},
    "mmmu": {"accuracy", "accuracy_multiple_choice", "accuracy_open"},
    "ai2d": {"accuracy"},
    "mmstar": {"accuracy"},
    "mmbench": {"accuracy", "circular_accuracy"},
    "scienceqa": {"accuracy"},
    "cvbench": {"accuracy", "accuracy_2d", "accuracy_3d"},
    "textvqa": {"accuracy"},
}


def stage(name: str, tmp_path: Path) -> tuple[Fixture, pl.DataFrame, pl.DataFrame, dict[str, Path]]:
    fixture = BUILDERS[name](tmp_path / "download")
    config = parse_config({"benchmarks": {name: fixture.entry}}).benchmarks[name]
    paths = staged_paths(tmp_path / "staged")
    stage_benchmark(name, config, paths)
    return fixture, pl.read_parquet(paths["item_table"]), pl.read_parquet(paths["rejects"]), paths


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_published_benchmark_stages_with_its_rejects_and_prompt(name: str, tmp_path: Path) -> None:
    fixture, items, rejects, _ = stage(name, tmp_path)
    assert items.height == fixture.items
    assert dict(rejects["reason"].value_counts().iter_rows()) == fixture.rejects
    spec = get_benchmark(fixture.entry["adapter"])
    assert spec.prompt(items.row(0, named=True), "v1") == fixture.first_prompt


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_published_benchmark_runs_end_to_end_with_official_scores(name: str, tmp_path: Path, tiny_models) -> None:
    fixture, items, _, paths = stage(name, tmp_path)
    scoring = TypeAdapter(BenchmarkConfig).validate_python(fixture.entry).scoring()
    render_benchmark(paths["images"], RENDER, 0, tmp_path / "r.zarr", workers=1, progress=False)
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), batch_size=4, max_new_tokens=3)
    predictions = tmp_path / "p.parquet"
    predict_benchmark("m", name, model, PredictConfig(), PromptConfig(), paths["item_table"], tmp_path / "r.zarr",
                      predictions, scoring=scoring, progress=False)  # fmt: skip
    table = pl.read_parquet(predictions)
    assert table["item_id"].n_unique() == items.height
    outputs = {k: tmp_path / f"{k}.out" for k in ("metrics", "classes", "manifest")}
    decay_benchmark(
        predictions,
        paths["item_table"],
        DecayConfig(bootstrap=50, coarse_families=["blank", "none"]),
        0,
        outputs,
        "m",
        name,
        scoring,
    )
    metrics = pl.read_parquet(outputs["metrics"])
    official = metrics.filter(pl.col("metric").str.starts_with("official_"))
    blur = official.filter(pl.col("family") == "blur")
    assert {m.removeprefix("official_") for m in blur["metric"]} >= OFFICIAL[name]
    assert set(blur["level"]) == {0, 1}  # every rendered level is scored
    for row in official.filter(pl.col("value").is_not_null()).iter_rows(named=True):
        assert 0 <= row["value"] <= 1, row
        assert row["ci_low"] is not None and row["ci_low"] <= row["value"] + 1e-9 <= row["ci_high"] + 2e-9, row


MMMU = BenchmarkScoring(adapter="mmmu", open_scorer="textvqa")


def test_mmmu_sends_several_images_in_reference_order_to_both_families(tmp_path: Path, tiny_models) -> None:
    _, items, _, paths = stage("mmmu", tmp_path)
    two = items.filter(pl.col("item_id") == "validation_Art_2").row(0, named=True)
    assert json.loads(two["metadata"])["image_order"] == [2, 1]  # "<image 2> with <image 1>"
    assert two["image_keys"] == [sha256_hex(struct(52)["bytes"]), sha256_hex(struct(51)["bytes"])]  # image_2 first
    render_benchmark(paths["images"], RENDER, 0, tmp_path / "r.zarr", workers=1, progress=False)
    for family in ("qwen2_5_vl", "llava_next"):
        model = ModelConfig(adapter=family, path=str(tiny_models[family]), batch_size=2, max_new_tokens=2)
        out = tmp_path / f"{family}.parquet"
        predict_benchmark("m", "mmmu", model, PredictConfig(), PromptConfig(), paths["item_table"],
                          tmp_path / "r.zarr", out, scoring=MMMU, progress=False)  # fmt: skip
        assert pl.read_parquet(out)["item_id"].n_unique() == 3


def test_repope_keeps_its_own_labels_and_the_pope_answer(tmp_path: Path) -> None:
    _, items, rejects, _ = stage("repope", tmp_path)
    adversarial = items.filter(pl.col("item_id") == "adversarial/2").row(0, named=True)
    meta = json.loads(adversarial["metadata"])
    assert adversarial["answer"] == "yes" and meta["pope_answer"] == "no" and meta["relabelled"] is True
    assert set(rejects["item_id"]) == {"popular/2", "random/1"}


def test_a_download_at_the_wrong_split_names_the_shards_it_found(tmp_path: Path) -> None:
    fixture = BUILDERS["ai2d"](tmp_path / "download")
    config = parse_config({"benchmarks": {"a": {**fixture.entry, "split": "validation"}}}).benchmarks["a"]
    assert config.data_problems() == [
        f"split: no parquet shards of split 'validation' under '{tmp_path / 'download'}' (shards found: test); "
        "set `split`"
    ]


def test_a_folder_of_another_dataset_names_the_missing_columns(tmp_path: Path) -> None:
    BUILDERS["ai2d"](tmp_path / "download")
    config = parse_config({"benchmarks": {"a": {"adapter": "mmstar", "path": str(tmp_path / "download"),
                                                "split": "test"}}}).benchmarks["a"]  # fmt: skip
    (problem,) = config.data_problems()
    assert problem.startswith("path: ") and "no column(s) index, category, l2_category" in problem
    assert "(columns: question, options, answer, image)" in problem


def test_lmms_lab_encoder_layout_reads_the_same(tmp_path: Path) -> None:
    """The converted-parquet layout (<subset>/<split>/0000.parquet) of the moved lmms-lab-encoder copies."""
    fixture = BUILDERS["mmbench"](tmp_path / "a")
    moved = tmp_path / "b" / "en" / "dev" / "0000.parquet"
    moved.parent.mkdir(parents=True)
    (tmp_path / "a" / "en" / "dev-00000-of-00001.parquet").rename(moved)
    config = parse_config({"benchmarks": {"m": {**fixture.entry, "path": str(tmp_path / "b")}}}).benchmarks["m"]
    assert config.parquet_files() == [moved]
    assert config.data_problems() == []


def test_vlmbias_probes_the_expected_bias_by_default() -> None:
    config = parse_config({"benchmarks": {"v": {"adapter": "vlmbias", "path": "x"}}})
    assert config.probe_for("v").prior_field == "expected_bias"


def test_a_download_without_the_subset_names_the_subsets_it_has(tmp_path: Path) -> None:
    """MMBench downloaded as its Chinese subset only: staging the default `en` must not read `cn`'s shards."""
    fixture = BUILDERS["mmbench"](tmp_path / "download")
    (tmp_path / "download" / "en").rename(tmp_path / "download" / "cn")
    config = parse_config({"benchmarks": {"m": fixture.entry}}).benchmarks["m"]
    assert config.data_problems() == [
        f"subset: no subset 'en' under '{tmp_path / 'download'}' (subsets found: cn); set `subset`"
    ]
    flat = BUILDERS["ai2d"](tmp_path / "flat")  # shards under data/: a one-config dataset is that subset
    assert (
        parse_config({"benchmarks": {"a": {**flat.entry, "subset": "default"}}}).benchmarks["a"].data_problems() == []
    )


def test_split_files_named_as_published(tmp_path: Path) -> None:
    """CV-Bench's test_2d/test_3d files are both split `test`; MMStar's one mmstar.parquet is its only split;
    `testmini` is not `test`."""
    fixture = BUILDERS["cvbench"](tmp_path / "cv")
    table = pq.read_table(tmp_path / "cv" / "test-00000-of-00001.parquet")
    (tmp_path / "cv" / "test-00000-of-00001.parquet").unlink()
    pq.write_table(table.slice(0, 2), tmp_path / "cv" / "test_2d.parquet")
    pq.write_table(table.slice(2), tmp_path / "cv" / "test_3d.parquet")
    pq.write_table(table.slice(0, 1), tmp_path / "cv" / "testmini.parquet")
    config = parse_config({"benchmarks": {"c": fixture.entry}}).benchmarks["c"]
    assert [f.name for f in config.parquet_files()] == ["test_2d.parquet", "test_3d.parquet"]
    single = BUILDERS["mmstar"](tmp_path / "star")
    (tmp_path / "star" / "mmstar" / "val-00000-of-00001.parquet").rename(tmp_path / "star" / "mmstar.parquet")
    config = parse_config({"benchmarks": {"s": single.entry}}).benchmarks["s"]
    assert [f.name for f in config.parquet_files()] == ["mmstar.parquet"] and config.data_problems() == []


def staged_textvqa(tmp_path: Path, open_scorer: str) -> tuple[BenchmarkConfig, dict[str, Path]]:
    """The TextVQA fixture with references on which the two published scorers disagree ("man's" x5, "man" x5)."""
    fixture = BUILDERS["textvqa"](tmp_path / "download")
    (source,) = (tmp_path / "download" / "data").glob("*.parquet")
    table = pq.read_table(source).to_pylist()
    for row in table:
        row["answers"] = ["man's"] * 5 + ["man"] * 5
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(source)), source)
    entry = {**fixture.entry, "open_scorer": open_scorer}
    config = parse_config({"benchmarks": {"t": entry}}).benchmarks["t"]
    paths = staged_paths(tmp_path / "staged")
    stage_benchmark("t", config, paths)
    render_benchmark(paths["images"], RENDER, 0, tmp_path / "r.zarr", workers=1, progress=False)
    return config, paths


def test_open_scorer_reaches_predict_and_decay_through_the_slice(tmp_path: Path, tiny_models, monkeypatch) -> None:
    """Changing benchmarks.<name>.open_scorer changes the scores: the key reaches predict (and decay) in their
    slices; nothing reads it back from the staged table's provenance."""
    import blindspot.models.answering as answering

    monkeypatch.setattr(
        answering, "generate_batch", lambda runner, requests, n: [Response("Man's", None)] * len(requests)
    )
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), batch_size=4, max_new_tokens=3)
    config, paths = staged_textvqa(tmp_path, "textvqa")  # staged once, with the default scorer in its provenance
    accuracy = {}
    for scorer in ("textvqa", "vqav2_evalai"):
        scoring = config.model_copy(update={"open_scorer": scorer}).scoring()
        out = tmp_path / f"{scorer}.parquet"
        predict_benchmark("m", "t", model, PredictConfig(conditions=["blur/0"]), PromptConfig(), paths["item_table"],
                          tmp_path / "r.zarr", out, scoring=scoring, progress=False)  # fmt: skip
        table = pl.read_parquet(out)
        assert set(table["score"]) == {1.0 if scorer == "textvqa" else 0.0}
        assert set(table["score_official"]) == set(table["score"])
        outputs = {k: tmp_path / f"{scorer}.{k}" for k in ("metrics", "classes", "manifest")}
        decay_benchmark(out, paths["item_table"], DecayConfig(bootstrap=20, coarse_families=[]), 0, outputs, "m", "t",
                        scoring)  # fmt: skip
        metrics = pl.read_parquet(outputs["metrics"])
        accuracy[scorer] = metrics.filter(pl.col("metric") == "official_accuracy")["value"].to_list()
    assert accuracy == {"textvqa": [1.0], "vqav2_evalai": [0.0]}


def test_every_scoring_key_is_in_the_slice_of_every_stage_that_scores() -> None:
    """A changed adapter or open_scorer changes the slice (so Snakemake reruns the job) of every stage that runs or
    scores a model."""
    base = {"benchmarks": {"t": {"adapter": "textvqa", "path": "x"}}, "models": {"m": {"adapter": "qwen2_5_vl",
            "path": "m"}}, "swap": {"pairs": {"p": {"base": "m", "donor": "m"}}}}  # fmt: skip
    changed = json.loads(json.dumps(base))
    changed["benchmarks"]["t"]["open_scorer"] = "vqav2"
    for stage, wildcards in (("predict", {"model": "m", "bench": "t"}), ("decay", {"model": "m", "bench": "t"}),
                             ("extract", {"model": "m", "bench": "t"}), ("swap", {"pair": "p", "bench": "t"}),
                             ("patch", {"model": "m", "bench": "t"})):  # fmt: skip
        before = STAGES[stage].build_slice(parse_config(base), wildcards)
        after = STAGES[stage].build_slice(parse_config(changed), wildcards)
        assert before.scoring.open_scorer == "textvqa", stage  # type: ignore[attr-defined]
        assert after.scoring.open_scorer == "vqav2", stage  # type: ignore[attr-defined]


def test_a_benchmark_staged_under_another_adapter_is_one_line(tmp_path: Path, tiny_models) -> None:
    _, _, _, paths = stage("pope", tmp_path)
    render_benchmark(paths["images"], RENDER, 0, tmp_path / "r.zarr", workers=1, progress=False)
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]))
    with pytest.raises(InputError, match=r"staged with adapter 'pope', but benchmarks.pope.adapter is 'generic'"):
        predict_benchmark("m", "pope", model, PredictConfig(), PromptConfig(), paths["item_table"], tmp_path / "r.zarr",
                          tmp_path / "p.parquet", scoring=GENERIC_SCORING, progress=False)  # fmt: skip
