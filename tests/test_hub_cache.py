"""Model names from the local Hugging Face cache work offline: a hub id as ``path`` resolves to the cached
snapshot (the layout `hf download ORG/NAME` writes), in the path checks, the rerun inputs and the loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blindspot.config import ConfigError, ModelConfig, load_config, path_problems
from blindspot.config_base import path_problem
from blindspot.errors import BlindspotError
from blindspot.hub_cache import HubCacheError, cached_snapshot, hub_cache_dir
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


def test_a_models_revision_reaches_the_snapshot_lookup(cache: Path, tiny_models: dict[str, Path]) -> None:
    other = "e" * 40
    fill_cache(cache, "acme/tiny", tiny_models["qwen2_5_vl"])
    shutil.copytree(tiny_models["llava_next"], cache / "models--acme--tiny" / "snapshots" / other)
    (cache / "models--acme--tiny" / "refs" / "v2").write_text(other)
    for revision in (other, "v2"):
        config = ModelConfig(adapter="qwen2_5_vl", path="acme/tiny", revision=revision)
        assert config.local_dir() == str(cache / "models--acme--tiny" / "snapshots" / other)
        assert all(f.startswith(config.local_dir()) for f in config.weight_files())


def config_with(tmp_path: Path, model: str) -> Path:
    (tmp_path / "b.jsonl").write_text("")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"benchmarks:\n  b: {{adapter: generic, path: b.jsonl, answer_type: yes_no}}\nmodels:\n  m: {model}\n"
    )
    return path


@pytest.mark.parametrize("revision", ["../../outside", "/etc/hostname", "refs/../../../x", ".git", "a b", "x\\\\y"])
def test_a_revision_that_is_not_a_ref_name_is_refused_in_one_line(
    cache: Path, tmp_path: Path, tiny_models: dict[str, Path], revision: str
) -> None:
    fill_cache(cache, "acme/tiny", tiny_models["qwen2_5_vl"])
    outside = tmp_path / "outside"
    outside.write_text(COMMIT)  # what "../../outside" would read as a ref
    with pytest.raises(HubCacheError) as caught:
        cached_snapshot("acme/tiny", revision)
    assert caught.value.key == "model.revision" and "is not a branch, tag or commit name" in str(caught.value)
    with pytest.raises(ConfigError) as refused:
        load_config(config_with(tmp_path, f"{{adapter: qwen2_5_vl, path: acme/tiny, revision: {revision!r}}}"))
    (line,) = str(refused.value).splitlines()
    assert line.startswith("models.m.revision: ")


def test_a_ref_that_holds_a_path_is_refused_naming_the_file(cache: Path, tmp_path: Path, tiny_models) -> None:
    """A ref file's content is a commit hash: one that names a folder outside the cache never loads it."""
    fill_cache(cache, "acme/tiny", tiny_models["qwen2_5_vl"])
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tiny_models["qwen2_5_vl"], elsewhere)
    ref = cache / "models--acme--tiny" / "refs" / "main"
    ref.write_text(f"../../../{elsewhere.name}")
    with pytest.raises(HubCacheError, match=r"ref file '.*refs/main' holds .*not a commit hash"):
        cached_snapshot("acme/tiny")
    (line,) = path_problems(load_config(config_with(tmp_path, "{adapter: qwen2_5_vl, path: acme/tiny}")))
    assert line.startswith("models.m.path: the cache's ref file") and str(ref) in line
    with pytest.raises(BlindspotError, match="not a commit hash"):
        load_model(ModelConfig(adapter="qwen2_5_vl", path="acme/tiny", device="cpu"))


def test_a_snapshot_that_links_out_of_the_cache_is_refused(cache: Path, tmp_path: Path, tiny_models) -> None:
    snapshot = fill_cache(cache, "acme/tiny", tiny_models["qwen2_5_vl"])
    elsewhere = tmp_path / "elsewhere"
    shutil.move(snapshot, elsewhere)
    snapshot.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(HubCacheError, match="outside the Hugging Face cache"):
        cached_snapshot("acme/tiny")
    (line,) = path_problems(load_config(config_with(tmp_path, "{adapter: qwen2_5_vl, path: acme/tiny}")))
    assert "outside the Hugging Face cache" in line


def test_the_caches_own_links_into_blobs_are_fine(cache: Path, tiny_models: dict[str, Path]) -> None:
    """hf download stores files in blobs/ and links them from the snapshot: that resolves inside the cache."""
    snapshot = fill_cache(cache, "acme/tiny", tiny_models["qwen2_5_vl"])
    blobs = cache / "models--acme--tiny" / "blobs"
    blobs.mkdir()
    for file in list(snapshot.iterdir()):
        blob = blobs / file.name
        shutil.move(file, blob)
        file.symlink_to(Path("..") / ".." / "blobs" / file.name)
    assert cached_snapshot("acme/tiny") == snapshot
    assert ModelConfig(adapter="qwen2_5_vl", path="acme/tiny").weight_files()


def test_a_local_folder_path_is_never_taken_for_a_hub_id(cache: Path, tmp_path: Path) -> None:
    """models/Qwen2.5-VL-7B-Instruct names a folder (its first part is one, or the model's hub_id is another
    repository): the fetch hint downloads the hub_id into it, never `hf download models/...`."""
    hint = path_problem("models/Qwen2.5-VL-7B-Instruct", "model", "Qwen/Qwen2.5-VL-7B-Instruct")
    assert hint is not None and hint.endswith(
        "fetch it with: hf download Qwen/Qwen2.5-VL-7B-Instruct --local-dir models/Qwen2.5-VL-7B-Instruct"
    )
    (tmp_path / "weights").mkdir()
    hint = path_problem("weights/my-model", "model")
    assert hint is not None and "hf download ORG/NAME --local-dir weights/my-model" in hint
    hint = path_problem("acme/absent", "model")
    assert hint is not None and hint.endswith("fetch it with: hf download acme/absent")
