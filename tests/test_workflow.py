"""Real Snakemake runs of the workflow on fixture data: end to end, incremental reruns, config errors, lint."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import REPO, generic_entry, run_snakemake, write_config

from blindspot.fixtures import write_shapes_benchmark
from blindspot.models.tiny import build_tiny_model
from blindspot.stages.table import STAGES
from blindspot.store.render import RenderStore

pytestmark = pytest.mark.slow

SMALL_RENDER = {"resize": {"longest_side": 112, "multiple_of": 28}, "pixelate": {"blocks": [4, 8]}}


def bench_entry(workdir: Path, name: str, seed: int, **kw: object) -> dict:
    path = write_shapes_benchmark(workdir / "data" / name, n_items=6, seed=seed, **kw)
    return generic_entry(path.relative_to(workdir))


def snapshot(paths: list[Path]) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under the given paths."""
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
    return out


def scheduled_jobs(dry_run_output: str) -> list[tuple[str, str | None]]:
    """(rule, bench wildcard) of every job in a `snakemake -n` listing."""
    jobs, rule = [], None
    for line in dry_run_output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            if rule is not None:
                jobs.append((rule, None))
            rule = m.group(1)
        elif rule and (m := re.match(r"wildcards: (?:model=\S+, )?bench=(\S+)", line.strip())):
            jobs.append((rule, m.group(1)))
            rule = None
    if rule is not None:
        jobs.append((rule, None))
    return jobs


def test_end_to_end_run(tmp_path: Path) -> None:
    config = {
        "benchmarks": {
            "colour": bench_entry(tmp_path, "colour", seed=1),
            "yesno": {
                **bench_entry(tmp_path, "yesno", seed=2, kind="shape_yes_no", fmt="jsonl", image_mode="path"),
                "answer_type": "yes_no",
                "image_root": "data/yesno/images",
                "columns": {"id": "question_id"},
            },
        },
        "render": SMALL_RENDER,
    }
    write_config(tmp_path, config)
    console = run_snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1")
    # Each job's summary reaches the console (the full output stays in its log).
    shown = console.stdout + console.stderr
    assert "staged colour: 6 items, 6 images, 3 rejects (bad_image=1, missing_answer=1, missing_question=1)" in shown
    for bench in ("colour", "yesno"):
        items = pl.read_parquet(tmp_path / f"results/staged/{bench}/items.parquet")
        rejects = pl.read_parquet(tmp_path / f"results/staged/{bench}/rejects.parquet")
        assert items.height == 6 and rejects.height == 3
        store = RenderStore(tmp_path / f"results/render/{bench}.zarr")
        assert set(items["image_keys"].explode()) == set(store.image_keys)
        assert len(store.conditions) == 8 + 2 + 2
        assert (tmp_path / f"results/logs/stage/{bench}.log").is_file()
        assert (tmp_path / f"results/logs/render/{bench}.log").is_file()
    assert not list((tmp_path / "results").rglob(".*.tmp-*")), "temporary outputs left behind"
    # The aggregate step wrote its tables, plots and page, and Snakemake's own report packs them.
    summary = pl.read_parquet(tmp_path / "results/tables/summary.parquet")
    assert summary.height == 0  # no models configured: no decay rows, but every table exists
    assert (tmp_path / "results/report.html").stat().st_size > 0
    assert (tmp_path / "results/plots/decay_colour.png").stat().st_size > 0
    run_snakemake(tmp_path, "--report", "report.zip")
    assert (tmp_path / "report.zip").stat().st_size > 0
    # Nothing left to do afterwards.
    assert "Nothing to be done" in run_snakemake(tmp_path, "-n").stdout


def test_adding_a_benchmark_reruns_only_its_jobs(tmp_path: Path) -> None:
    first = bench_entry(tmp_path, "first", seed=1)
    write_config(tmp_path, {"benchmarks": {"first": first}, "render": SMALL_RENDER})
    run_snakemake(tmp_path, "--cores", "2")
    outputs = [tmp_path / "results/staged/first", tmp_path / "results/render/first.zarr"]
    before = snapshot(outputs)

    second = bench_entry(tmp_path, "second", seed=2)
    write_config(tmp_path, {"benchmarks": {"first": first, "second": second}, "render": SMALL_RENDER})
    jobs = scheduled_jobs(run_snakemake(tmp_path, "-n").stdout)
    assert sorted(jobs) == [("aggregate", None), ("all", None), ("render", "second"), ("stage", "second")]

    run_snakemake(tmp_path, "--cores", "2")
    assert snapshot(outputs) == before  # bytes and mtimes of the first benchmark untouched
    assert (tmp_path / "results/render/second.zarr/zarr.json").is_file()


@pytest.mark.extended  # make test-all
def test_a_limited_run_in_its_own_results_folder_leaves_the_full_run_alone(tmp_path: Path) -> None:
    full = bench_entry(tmp_path, "b", seed=1)
    write_config(tmp_path, {"benchmarks": {"b": full}, "render": SMALL_RENDER})
    run_snakemake(tmp_path, "--cores", "2")
    before = snapshot([tmp_path / "results"])
    write_config(
        tmp_path, {"results": "results-small", "benchmarks": {"b": {**full, "limit": 3}}, "render": SMALL_RENDER}
    )
    run_snakemake(tmp_path, "--cores", "2")
    assert snapshot([tmp_path / "results"]) == before  # bytes and mtimes of the full run untouched
    assert pl.read_parquet(tmp_path / "results-small/staged/b/items.parquet").height == 3
    assert pl.read_parquet(tmp_path / "results/staged/b/items.parquet").height > 3
    assert (tmp_path / "results-small/report.html").is_file()


@pytest.mark.extended  # make test-all
def test_changing_a_slice_reruns_exactly_its_jobs(tmp_path: Path) -> None:
    a, b = bench_entry(tmp_path, "a", seed=1), bench_entry(tmp_path, "b", seed=2)
    write_config(tmp_path, {"benchmarks": {"a": a, "b": b}, "render": SMALL_RENDER})
    run_snakemake(tmp_path, "--cores", "2")
    write_config(tmp_path, {"benchmarks": {"a": {**a, "limit": 4}, "b": b}, "render": SMALL_RENDER})
    jobs = scheduled_jobs(run_snakemake(tmp_path, "-n").stdout)
    assert sorted(jobs) == [("aggregate", None), ("all", None), ("render", "a"), ("stage", "a")]
    write_config(tmp_path, {"benchmarks": {"a": a, "b": b}, "render": {**SMALL_RENDER, "noise": {"enabled": False}}})
    jobs = scheduled_jobs(run_snakemake(tmp_path, "-n").stdout)
    assert sorted(jobs) == [("aggregate", None), ("all", None), ("render", "a"), ("render", "b")]


@pytest.mark.extended  # make test-all
def test_reruns_see_sources_images_and_output_versions(tmp_path: Path) -> None:
    """Rewriting a benchmark's source file, or an image it reads by path, re-stages that benchmark only; a new
    output version of a stage (new code whose outputs mean something else) reruns that stage's jobs only."""
    a = bench_entry(tmp_path, "a", seed=1)
    b = {
        **bench_entry(tmp_path, "b", seed=2, fmt="jsonl", image_mode="path"),
        "image_root": "data/b/images",
    }
    write_config(tmp_path, {"benchmarks": {"a": a, "b": b}, "render": SMALL_RENDER})
    run_snakemake(tmp_path, "--cores", "2")
    assert "Nothing to be done" in run_snakemake(tmp_path, "-n").stdout

    # 1. A source file rewritten in place (new content, newer mtime).
    write_shapes_benchmark(tmp_path / "data" / "a", n_items=6, seed=9)
    assert sorted(scheduled_jobs(run_snakemake(tmp_path, "-n").stdout)) == [
        ("aggregate", None),
        ("all", None),
        ("render", "a"),
        ("stage", "a"),
    ]
    run_snakemake(tmp_path, "--cores", "2")

    # 2. An image read by path from the benchmark's image folder, replaced.
    image = sorted((tmp_path / "data" / "b" / "images").iterdir())[0]
    image.write_bytes(sorted((tmp_path / "data" / "b" / "images").iterdir())[1].read_bytes())
    assert sorted(scheduled_jobs(run_snakemake(tmp_path, "-n").stdout)) == [
        ("aggregate", None),
        ("all", None),
        ("render", "b"),
        ("stage", "b"),
    ]
    run_snakemake(tmp_path, "--cores", "2")
    assert "Nothing to be done" in run_snakemake(tmp_path, "-n").stdout

    # 3. The installed code bumps the render stage's output version.
    package = tmp_path / "package"
    shutil.copytree(REPO / "src" / "blindspot", package / "blindspot")
    table = package / "blindspot" / "stages" / "table.py"
    text = table.read_text()
    current = f'name="render",\n            slice=RenderSlice,\n            version={STAGES["render"].version},'
    assert current in text
    table.write_text(text.replace(current, current.replace(f"version={STAGES['render'].version}", "version=99")))
    jobs = scheduled_jobs(run_snakemake(tmp_path, "-n", package=package).stdout)
    assert sorted(jobs) == [("aggregate", None), ("all", None), ("render", "a"), ("render", "b")]


@pytest.mark.extended  # make test-all
def test_models_run_through_predict_and_decay(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    """stage -> render -> predict -> decay, extract -> probe for a model; adding a second model schedules only its
    jobs and leaves the first model's outputs untouched; retraining a model in place reruns its jobs only."""
    render = {
        "resize": {"longest_side": 56, "multiple_of": 28},
        "blur": {"kernels": [1, 25, 61]},
        "pixelate": {"enabled": False},
    }
    models = tmp_path / "models"
    for family in ("qwen2_5_vl", "llava_next"):
        shutil.copytree(tiny_models[family], models / family)
    qwen = {"adapter": "qwen2_5_vl", "path": str(models / "qwen2_5_vl"), "max_new_tokens": 4}
    bench = bench_entry(tmp_path, "colour", seed=1)
    write_config(
        tmp_path,
        {"benchmarks": {"colour": bench}, "models": {"qwen": qwen}, "render": render, "decay": {"bootstrap": 50}},
    )
    run_snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1")
    predictions = pl.read_parquet(tmp_path / "results/predictions/qwen/colour.parquet")
    assert predictions.height == 6 * (3 + 2 + 1)  # blur x3, blank, noise, none
    items = pl.read_parquet(tmp_path / "results/decay/qwen/colour.items.parquet")
    assert items.height == 6 and set(items["class"]) <= {"fine_visual", "coarse_visual", "language_prior", "unparsed"}
    assert (tmp_path / "results/decay/qwen/colour.manifest.json").is_file()
    assert (tmp_path / "results/benchmarks/predict/qwen/colour.tsv").is_file()

    first_model = [tmp_path / f"results/{stage}/qwen" for stage in ("predictions", "decay", "hidden", "probes")]
    before = snapshot(first_model)
    llava = {"adapter": "llava_next", "path": str(models / "llava_next"), "max_new_tokens": 4}
    write_config(
        tmp_path,
        {
            "benchmarks": {"colour": bench},
            "models": {"qwen": qwen, "llava": llava},
            "render": render,
            "decay": {"bootstrap": 50},
        },
    )
    jobs = scheduled_jobs(run_snakemake(tmp_path, "-n").stdout)
    assert sorted(jobs) == [
        ("aggregate", None),
        ("all", None),
        ("decay", "colour"),
        ("extract", "colour"),
        ("lens", "colour"),
        ("predict", "colour"),
        ("probe", "colour"),
    ]
    assert "model=llava" in run_snakemake(tmp_path, "-n").stdout
    run_snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1")
    assert snapshot(first_model) == before

    # Retraining a checkpoint in place (new weights at the same path) reruns that model's jobs and nothing else.
    build_tiny_model("llava_next", models / "llava_next", seed=7)
    dry = run_snakemake(tmp_path, "-n").stdout
    assert sorted(scheduled_jobs(dry)) == [
        ("aggregate", None),
        ("all", None),
        ("decay", "colour"),
        ("extract", "colour"),
        ("lens", "colour"),
        ("predict", "colour"),
        ("probe", "colour"),
    ]
    assert "model=llava" in dry and "model=qwen" not in dry


def test_a_models_gpu_count_reaches_its_jobs_resources(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    """`models.<name>.gpu` is what each of that model's jobs asks Snakemake (and SLURM) for; other models keep 1."""
    big = {"adapter": "qwen2_5_vl", "path": str(tiny_models["qwen2_5_vl"]), "gpu": 2}
    small = {"adapter": "qwen2_5_vl", "path": str(tiny_models["qwen2_5_vl"])}
    write_config(tmp_path, {"benchmarks": {"a": bench_entry(tmp_path, "a", seed=1)}, "models": {"big": big,
                 "small": small}, "swap": {"pairs": {"p": {"base": "big", "donor": "small"}}}})  # fmt: skip
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--resources", "gpu=2")
    jobs = re.findall(r"rule (\w+):\n(?:    .*\n)*?    wildcards: ([^\n]*)\n(?:    .*\n)*?    resources: ([^\n]*)",
                      result.stdout)  # fmt: skip
    gpus = {
        (rule, wildcards): dict(kv.split("=") for kv in res.split(", ")).get("gpu") for rule, wildcards, res in jobs
    }
    for rule in ("predict", "extract"):
        assert gpus[(rule, "model=big, bench=a")] == "2" and gpus[(rule, "model=small, bench=a")] == "1", gpus
    assert gpus[("swap", "pair=p, bench=a")] == "2"  # the base's count


def test_bad_config_stops_before_any_job(tmp_path: Path) -> None:
    write_config(tmp_path, {"benchmarks": {"mmstar": generic_entry(Path("data/missing"))}})
    result = run_snakemake(tmp_path, "--cores", "1", check=False)
    assert result.returncode != 0
    assert "config error: benchmarks.mmstar.path: no such file or directory 'data/missing'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_lint_is_clean(tmp_path: Path) -> None:
    write_config(tmp_path, {"benchmarks": {"a": bench_entry(tmp_path, "a", seed=1)}})
    result = run_snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_papers_config_validates_and_plans_the_whole_run(tmp_path: Path) -> None:
    """config/paper.yaml: all twelve benchmarks and three models; validated and planned without the data."""
    from blindspot.cli import main

    assert main(["check-config", str(REPO / "config" / "paper.yaml"), "--no-paths"]) == 0
    write_config(tmp_path, yaml.safe_load((REPO / "config" / "paper.yaml").read_text()))
    result = run_snakemake(tmp_path, "-n", "--config", "check_paths=false")
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M)}
    assert counts["stage"] == 12 and counts["render"] == 12
    assert counts["decay"] == 36 and counts["aggregate"] == 1
    # shards: auto, from each adapter's published size (no data here): RePOPE 5 jobs, TextVQA and MMBench 3, ...
    shards = {"repope": 5, "textvqa": 3, "mmbench": 3, "ai2d": 2, "cvbench": 2, "scienceqa": 2}
    assert counts["predict"] == 3 * (12 - len(shards)) and counts["predict_gather"] == 3 * len(shards)
    assert counts["predict_part"] == 3 * sum(shards.values()) and counts["extract_part"] == 3 * sum(shards.values())
    assert counts["patch_part"] == sum(shards.values())  # one patched model
    jobs = result.stdout.split("\n\n")
    for model, runtime in (("qwen2_5_vl_3b", 240), ("llava_v1_6_mistral_7b", 720)):
        part = next(j for j in jobs if "rule predict_part:" in j and f"part=2-of-5, model={model}, bench=repope" in j)
        assert f"runtime={runtime}," in part and "mem_mb=32000" in part and "cpus_per_task=8" in part
        assert "gpu=1" in part and "predictions/" in part
    gather = next(j for j in jobs if "rule predict_gather:" in j and "bench=repope" in j)
    assert "runtime=30," in gather and "gpu=0" in gather and "5-of-5/predictions" in gather


def test_a_published_benchmark_runs_through_the_workflow_from_its_download_folder(tmp_path: Path) -> None:
    """RePOPE from POPE's download folder plus RePOPE's labels: the stage job's inputs are the split's shards and
    the label files (a relabelled question re-stages), and its summary reaches the console."""
    from published_data import repope

    fixture = repope(tmp_path / "download")
    write_config(tmp_path, {"benchmarks": {"repope": fixture.entry}, "render": SMALL_RENDER})
    console = run_snakemake(tmp_path, "--cores", "1", "results/render/repope.zarr/zarr.json")
    assert "staged repope: 4 items, 3 images, 2 rejects (dropped_by_repope=1, label_mismatch=1)" in (
        console.stdout + console.stderr
    )
    labels = tmp_path / "download" / "RePOPE" / "annotations" / "coco_repope_random.json"
    labels.write_text(labels.read_text().replace('"label": "no"', '"label": "yes"'))  # a relabelled question
    planned = run_snakemake(tmp_path, "-n", "results/render/repope.zarr/zarr.json").stdout
    assert re.search(r"^stage\s+1$", planned, re.M) and re.search(r"^render\s+1$", planned, re.M)


def test_off_format_answers_on_a_published_benchmark_are_reported_not_scored_as_zero(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    """POPE in its download layout, answered by a random tiny model whose replies are not yes or no: the unparsed
    share and the WARNING line reach the console, the summary table and the report's sentences; no rate is a
    number computed from fewer parsed answers than decay.min_parsed."""
    from published_data import pope

    fixture = pope(tmp_path / "download")
    qwen = {"adapter": "qwen2_5_vl", "path": str(tiny_models["qwen2_5_vl"]), "max_new_tokens": 4}
    render = {**SMALL_RENDER, "blur": {"kernels": [1, 25]}, "pixelate": {"enabled": False}}
    write_config(
        tmp_path,
        {
            "benchmarks": {"pope": fixture.entry},
            "models": {"qwen": qwen},
            "render": render,
            "decay": {"bootstrap": 50},
            "probe": {"folds": 2},
        },
    )
    result = run_snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1")
    console = result.stdout + result.stderr
    predictions = pl.read_parquet(tmp_path / "results/predictions/qwen/pope.parquet")
    unparsed = (predictions["outcome"] == "unparsed").mean()
    assert unparsed > 0.5, "the random tiny model was expected to answer off-format"
    assert f"WARNING: {100 * unparsed:.0f}% of qwen's answers on pope could not be read (unparsed)" in console
    assert "| unparsed |" in console.replace("  ", " ") or " unparsed " in console  # the summary table's column

    summary = pl.read_parquet(tmp_path / "results/tables/summary.parquet").row(0, named=True)
    assert summary["share_unparsed_answers"] == pytest.approx(unparsed)
    assert summary["warning"] is not None
    report = (tmp_path / "results/report.html").read_text()
    assert "could not be read (unparsed)" in report and 'class="warning"' in report

    parsed = predictions.with_columns(read=pl.col("outcome").is_in(["correct", "wrong"]))
    per_level = dict(parsed.group_by("family", "level").agg(pl.col("read").sum()).select(
        pl.format("{}/{}", "family", "level"), "read").iter_rows())  # fmt: skip
    metrics = pl.read_parquet(tmp_path / "results/decay/qwen/pope.parquet")
    for r in metrics.filter(pl.col("metric") == "accuracy").iter_rows(named=True):
        if per_level[f"{r['family']}/{r['level']}"] < 5:
            assert r["value"] is None and "decay.min_parsed is 5" in r["note"], r
    assert all(r["note"] for r in metrics.filter(pl.col("value").is_null()).iter_rows(named=True))


def test_the_shipped_profiles_console_is_short_lines_and_each_jobs_log_is_whole(tmp_path: Path) -> None:
    """Under the local profile the console gets each job's start (with its log), result and any warning, never a
    line over 300 characters (the inline --slice JSON made lines of up to 1,500); the logs hold the rest."""
    write_config(tmp_path, {"benchmarks": {"colour": bench_entry(tmp_path, "colour", seed=1)}, "render": SMALL_RENDER})
    done = run_snakemake(tmp_path, "--workflow-profile", str(REPO / "workflow" / "profiles" / "local"))
    console = (done.stdout + done.stderr).splitlines()
    assert max(len(line) for line in console) <= 300, max(console, key=len)
    assert "stage colour: started (log: results/logs/stage/colour.log)" in console
    assert any(line.startswith("staged colour: 6 items") for line in console)
    assert "--slice" not in done.stdout + done.stderr
    assert "staged colour: 6 items" in (tmp_path / "results/logs/stage/colour.log").read_text()
    # the stores are declared by their zarr.json: no marker file of Snakemake's inside a store (xarray reads it)
    stores = list((tmp_path / "results").rglob("*.zarr"))
    assert stores and not [p for s in stores for p in s.rglob(".snakemake_timestamp")]
