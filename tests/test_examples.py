"""Every shipped config validates, and the README's quick start works as written: a Qwen2.5-VL snapshot in the
local Hugging Face cache (here a tiny one under the real name) and POPE in its download layout pass
``check-config --data``, and Snakemake plans the whole run from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, run_snakemake
from published_data import pope
from test_hub_cache import fill_cache

from blindspot.cli import main

CONFIGS = sorted((REPO / "config").rglob("*.yaml"))


def test_the_shipped_configs_are_all_listed() -> None:
    names = {p.relative_to(REPO / "config").as_posix() for p in CONFIGS}
    assert {"config.yaml", "paper.yaml", "toy-llava.yaml", "examples/real-models.yaml"} <= names
    assert "examples/quickstart.yaml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(REPO / "config").as_posix())
def test_every_shipped_config_passes_check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(path), "--no-paths"]) == 0
    assert ": OK (shape only" in capsys.readouterr().out


def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path]) -> Path:
    """The quick start's two downloads, in their real layouts, under ``tmp_path``; returns the config."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    fill_cache(cache, "Qwen/Qwen2.5-VL-3B-Instruct", tiny_models["qwen2_5_vl"])
    pope(tmp_path / "data" / "POPE")
    config = tmp_path / "config.yaml"  # the file run_snakemake passes
    config.write_text((REPO / "config" / "examples" / "quickstart.yaml").read_text())
    return config


@pytest.mark.slow
def test_the_quick_start_checks_with_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = quickstart(tmp_path, monkeypatch, tiny_models)
    assert main(["check-config", str(config), "--data"]) == 0, capsys.readouterr().err
    assert "shape and paths; every benchmark source opened" in capsys.readouterr().out


@pytest.mark.slow
def test_the_quick_start_plans_the_whole_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path]
) -> None:
    config = quickstart(tmp_path, monkeypatch, tiny_models)
    assert config == tmp_path / "config.yaml"
    result = run_snakemake(tmp_path, "-n")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M))
    assert {k: counts.get(k) for k in ("stage", "render", "predict", "decay", "extract", "probe", "aggregate")} == {
        "stage": "1", "render": "1", "predict": "1", "decay": "1", "extract": "1", "probe": "1", "aggregate": "1"
    }  # fmt: skip
    assert "results-quickstart/report.html" in result.stdout
