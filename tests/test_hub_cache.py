"""Model names from the local Hugging Face cache work offline: a hub id as ``path`` resolves to the cached
snapshot (the layout `hf download ORG/NAME` writes), in the path checks, the rerun inputs and the loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blindspot.config import ModelConfig, load_config, path_problems
from blindspot.config_base import path_problem
from blindspot.hub_cache import cached_snapshot, hub_cache_dir
from blindspot.models.loading import load_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_cache(cache: Path, repo_id: str, model_dir: Path, commit: str = COMMIT) -> Path:
    """The hub cache layout: models--ORG--NAME/{refs/main, snapshots/<commit>/...}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no folder named like the hub id beside the config
    return folder


def test_the_cache_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == tmp_path / "c"


@pytest.mark.slow
def test_a_cached_hub_id_loads_offline(cache: Path, tiny_models: dict[str, Path]) -> None:
    snapshot = fill_cache(cache, "acme/tiny-qwen", tiny_models["qwen2_5_vl"])
    config = ModelConfig(adapter="qwen2_5_vl", path="acme/tiny-qwen", device="cpu")
    assert config.local_dir() == str(snapshot)
    assert path_problem("acme/tiny-qwen", "model") is None
    assert config.weight_files() and all(f.startswith(str(snapshot)) for f in config.weight_files())
    loaded = load_model(config)
    assert loaded.model.config.model_type == "qwen2_5_vl"


def test_a_revision_picks_its_snapshot(cache: Path, tiny_models: dict[str, Path]) -> None:
    other = "f" * 40
    fill_cache(cache, "acme/tiny", tiny_models["qwen2_5_vl"])
    shutil.copytree(tiny_models["llava_next"], cache / "models--acme--tiny" / "snapshots" / other)
    assert cached_snapshot("acme/tiny") == cache / "models--acme--tiny" / "snapshots" / COMMIT
    assert cached_snapshot("acme/tiny", other) == cache / "models--acme--tiny" / "snapshots" / other


def test_an_uncached_hub_id_says_where_it_looked_and_how_to_fetch_it(cache: Path, tmp_path: Path) -> None:
    problem = path_problem("acme/absent", "model")
    assert problem is not None
    assert "local Hugging Face cache" in problem and str(cache) in problem and "hf download acme/absent" in problem
    config_file = tmp_path / "c.yaml"
    (tmp_path / "b.jsonl").write_text("")
    config_file.write_text(
        "benchmarks:\n  b: {adapter: generic, path: b.jsonl, answer_type: yes_no}\n"
        "models:\n  m: {adapter: qwen2_5_vl, path: acme/absent}\n",
        encoding="utf-8",
    )
    (line,) = path_problems(load_config(config_file))
    assert line.startswith("models.m.path: 'acme/absent' is neither a model directory nor in the local")
    assert ModelConfig(adapter="qwen2_5_vl", path="acme/absent").local_dir() == "acme/absent"
