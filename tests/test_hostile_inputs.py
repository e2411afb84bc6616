"""Hostile and broken benchmark inputs: one bad row never stops a benchmark, sizes are bounded before decoding,
image paths stay inside image_root, and config values that validate cannot go wrong later."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import stage_entry

from blindspot.benchmarks.sources import SourceError
from blindspot.config import ConfigError, parse_config
from blindspot.fixtures import pixel_bomb_png
from blindspot.images import encode_png
from blindspot.models.tiny import build_tiny_model

SECRET = b"TOPSECRET-do-not-copy"


@pytest.fixture(scope="module")
def png() -> bytes:
    return encode_png(np.full((16, 16, 3), 120, dtype=np.uint8))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return pixel_bomb_png(32000)  # 1 MB of PNG, 1.02 billion pixels


def stage_rows(tmp_path: Path, rows: list[dict], name: str = "h", **entry: object) -> tuple[pl.DataFrame, pl.DataFrame]:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Most rows are bad by design here: the reject-share check has its own tests.
    config = {"adapter": "generic", "path": str(path), "answer_type": "yes_no", "columns": {"id": "id"},
              "max_reject_share": 1.0, **entry}  # fmt: skip
    out = tmp_path / "staged" / name
    stage_entry(name, config, out)
    return pl.read_parquet(out / "items.parquet"), pl.read_parquet(out / "rejects.parquet")


@pytest.mark.slow
def test_bad_images_are_rejects_not_crashes(tmp_path: Path, png: bytes, bomb: bytes) -> None:
    images = tmp_path / "images"
    (images / "folder.png").mkdir(parents=True)
    (images / "ok.png").write_bytes(png)
    (images / "empty.png").write_bytes(b"")
    (images / "bomb.png").write_bytes(bomb)
    rows = [{"id": i, "question": "q?", "answer": "yes", "image": f} for i, f in
            enumerate(["ok.png", "empty.png", "folder.png", "bomb.png"])]  # fmt: skip
    items, rejects = stage_rows(tmp_path, rows, image_root=str(images))
    assert items["item_id"].to_list() == ["0"]
    reasons = dict(zip(rejects["item_id"], rejects["reason"], strict=True))
    assert reasons == {"1": "bad_image", "2": "bad_image", "3": "image_too_large"}
    messages = dict(zip(rejects["item_id"], rejects["message"], strict=True))
    assert "empty" in messages["1"] and "directory" in messages["2"]
    assert "exceeds the cap of 100000000 (max_image_pixels)" in messages["3"]


@pytest.mark.slow
def test_opencv_pixel_limit_is_a_reject_when_the_cap_is_raised(tmp_path: Path, png: bytes) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "ok.png").write_bytes(png)
    (images / "huge.png").write_bytes(pixel_bomb_png(33000))  # beyond OpenCV's 2**30-pixel limit
    rows = [{"id": i, "question": "q?", "answer": "yes", "image": f} for i, f in enumerate(["ok.png", "huge.png"])]
    items, rejects = stage_rows(tmp_path, rows, image_root=str(images), max_image_pixels=2_000_000_000)
    assert items.height == 1 and rejects["reason"].to_list() == ["bad_image"]


def test_invalid_utf8_line_and_binary_text_are_rejects(tmp_path: Path, png: bytes) -> None:
    good = {"id": "a", "question": "q?", "answer": "yes", "image": base64.b64encode(png).decode()}
    path = tmp_path / "mixed.jsonl"
    bad = b'{"id": "b", "question": "caf\xe9"}'
    path.write_bytes(json.dumps(good).encode() + b"\n" + bad + b"\n")
    out = tmp_path / "staged" / "mixed"
    stage_entry(
        "mixed", {"adapter": "generic", "path": str(path), "answer_type": "yes_no", "columns": {"id": "id"}}, out
    )
    rejects = pl.read_parquet(out / "rejects.parquet")
    offset = bad.index(bytes([0xE9]))
    expected = f"line 2 is not valid UTF-8 (byte {offset})"
    assert rejects.select("reason", "message").rows() == [("malformed_row", expected)]
    shards = tmp_path / "shards"  # one shard with text, one whose question column is binary
    shards.mkdir()
    pq.write_table(pa.table({"id": ["a"], "question": ["q?"], "answer": ["yes"], "image": [png]}), shards / "0.parquet")
    binary = pa.table({"id": ["b"], "question": pa.array([b"\x00\x01binary"], pa.binary()), "answer": ["no"],
                       "image": [png]})  # fmt: skip
    pq.write_table(binary, shards / "1.parquet")
    out = tmp_path / "staged" / "binary"
    entry = {"adapter": "generic", "path": str(shards), "answer_type": "yes_no", "columns": {"id": "id"}}
    stage_entry("binary", entry, out)
    rejects = pl.read_parquet(out / "rejects.parquet")
    assert rejects.select("item_id", "reason").rows() == [("b", "bad_text")]
    assert pl.read_parquet(out / "items.parquet")["question"].to_list() == ["q?"]
    assert "binary data" in rejects["message"][0]


def test_rows_that_break_in_odd_ways_are_rejects_and_the_rest_stage(tmp_path: Path, png: bytes) -> None:
    """Every row below raised, or failed the items table at the end, before: a lone surrogate (the table write
    failed for the whole benchmark), a question that is a mapping, deeply nested metadata, an image path too long
    for the file system, an over-long id, base64 that is not an image. Each is a reject with its reason; the good
    rows around them stage."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "ok.png").write_bytes(png)
    nested: object = "leaf"
    for _ in range(5000):
        nested = [nested]
    lines = [
        json.dumps({"id": "good1", "question": "q?", "answer": "yes", "image": "ok.png"}),
        '{"id": "surrogate", "question": "caf\\ud800?", "answer": "yes", "image": "ok.png"}',
        json.dumps({"id": "mapping", "question": {"text": "q?"}, "answer": "yes", "image": "ok.png"}),
        json.dumps({"id": "long_path", "question": "q?", "answer": "yes", "image": "x" * 300 + ".png"}),
        json.dumps({"id": "i" * 5000, "question": "q?", "answer": "yes", "image": "ok.png"}),
        json.dumps({"id": "base64", "question": "q?", "answer": "yes", "image": base64.b64encode(b"x" * 99).decode()}),
        json.dumps({"id": "good2", "question": "q2?", "answer": "no", "image": "ok.png"}),
        json.dumps({"id": "b64long", "question": "q?", "answer": "yes", "image": "QUJD" * 200}),  # base64, no '/'
    ]  # fmt: skip
    deep = (
        '{"id": "deep", "question": "q?", "answer": "yes", "image": "ok.png", "extra": '
        + "[" * 5000
        + "1"
        + "]" * 5000
        + "}"
    )
    lines.insert(3, deep)
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n")
    config = {"adapter": "generic", "path": str(path), "answer_type": "yes_no", "columns": {"id": "id"},
              "image_root": str(images), "max_reject_share": 1.0}  # fmt: skip
    out = tmp_path / "staged" / "odd"
    stage_entry("odd", config, out)
    items, rejects = pl.read_parquet(out / "items.parquet"), pl.read_parquet(out / "rejects.parquet")
    assert items["item_id"].to_list() == ["good1", "good2"]
    assert rejects.height == 7 and (rejects["message"].str.len_chars() < 500).all()
    reasons = dict(zip(rejects["source_index"].to_list(), rejects["reason"].to_list(), strict=True))
    assert reasons[1] == "bad_text" and reasons[5] == "bad_id" and reasons[6] == reasons[8] == "bad_image"
    assert reasons[4] == "bad_image" and "cannot be read" in rejects.filter(pl.col("source_index") == 4)["message"][0]
    assert all(r in ("bad_row", "malformed_row", "missing_question", "bad_text") for r in (reasons[2], reasons[3]))


def test_image_bytes_are_bounded_before_reading_and_an_unknown_header_is_not_decoded(
    tmp_path: Path, png: bytes
) -> None:
    """max_image_bytes is checked from the file's size (before it is read) and from the bytes of an inline image;
    an image whose header names no known format (Radiance HDR, which OpenCV decodes and Pillow cannot size) is
    refused before decoding, as its pixel count cannot be checked."""
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    big = encode_png(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (images / "small.png").write_bytes(png)
    (images / "big.png").write_bytes(big)
    _, hdr = cv2.imencode(".hdr", np.ones((8, 8, 3), np.float32))
    (images / "radiance.hdr").write_bytes(hdr.tobytes())
    rows = [{"id": 0, "question": "q?", "answer": "yes", "image": "small.png"},
            {"id": 1, "question": "q?", "answer": "yes", "image": "big.png"},
            {"id": 2, "question": "q?", "answer": "yes", "image": base64.b64encode(big).decode()},
            {"id": 3, "question": "q?", "answer": "yes", "image": "radiance.hdr"}]  # fmt: skip
    cap = len(big) - 1
    assert len(png) < cap
    items, rejects = stage_rows(tmp_path, rows, image_root=str(images), max_image_bytes=cap)
    assert items["item_id"].to_list() == ["0"]
    reasons = dict(zip(rejects["item_id"], rejects["reason"], strict=True))
    assert reasons == {"1": "image_too_large", "2": "image_too_large", "3": "bad_image"}
    messages = dict(zip(rejects["item_id"], rejects["message"], strict=True))
    assert f"exceeds the cap of {cap} (max_image_bytes)" in messages["1"]
    assert "header is not one of the known formats" in messages["3"]


def test_an_unreadable_parquet_is_one_line_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(SourceError) as caught:
        stage_entry("e", {"adapter": "generic", "path": str(empty), "answer_type": "yes_no"}, tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message and str(empty) in message and message.startswith("benchmark.path: cannot read parquet")


def test_paths_outside_image_root_are_refused_unread(tmp_path: Path, png: bytes) -> None:
    root = tmp_path / "images"
    root.mkdir()
    (root / "ok.png").write_bytes(png)
    secret = tmp_path / "secret.png"
    secret.write_bytes(SECRET)
    (root / "link.png").symlink_to(secret)
    rows = [{"id": i, "question": "q?", "answer": "yes", "image": f} for i, f in
            enumerate(["ok.png", "../secret.png", str(secret), "link.png", "/etc/passwd"])]  # fmt: skip
    items, rejects = stage_rows(tmp_path, rows, image_root=str(root))
    assert items["item_id"].to_list() == ["0"]
    assert rejects["reason"].to_list() == ["path_outside_root"] * 4
    stored = b"".join(p.read_bytes() for p in (tmp_path / "staged" / "h").iterdir())
    assert SECRET not in stored and b"root:" not in stored


def test_image_paths_need_an_image_root(tmp_path: Path, png: bytes) -> None:
    image = tmp_path / "abs.png"
    image.write_bytes(png)
    good = {"id": "b64", "question": "q?", "answer": "yes", "image": base64.b64encode(png).decode()}
    _, rejects = stage_rows(tmp_path, [good, {"id": "x", "question": "q?", "answer": "yes", "image": str(image)}])
    assert rejects["reason"].to_list() == ["path_outside_root"]


@pytest.mark.slow
def test_staging_a_pixel_bomb_stays_within_the_profile_memory(tmp_path: Path, bomb: bytes, png: bytes) -> None:
    """A 1 MB PNG declaring 32000 x 32000 pixels is refused from its header: the stage job's peak memory stays
    far below the profile's mem_mb (4000), where decoding it would take gigabytes."""
    root = tmp_path / "images"
    root.mkdir()
    (root / "bomb.png").write_bytes(bomb)
    (root / "ok.png").write_bytes(png)
    rows = [{"id": "a", "question": "q?", "answer": "yes", "image": "ok.png"},
            {"id": "b", "question": "q?", "answer": "yes", "image": "bomb.png"}]  # fmt: skip
    source = tmp_path / "bomb.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    entry = {"adapter": "generic", "path": str(source), "image_root": str(root), "answer_type": "yes_no",
             "columns": {"id": "id"}}  # fmt: skip
    (tmp_path / "entry.json").write_text(json.dumps(entry))
    # The child reports its own peak (peak_rss_mib reads VmHWM; see there why not ru_maxrss). RUSAGE_CHILDREN here
    # would be the largest child this test session has waited for (snakemake runs, training), not this job.
    script = (
        "import json, pathlib, sys; sys.path.insert(0, 'tests'); from conftest import stage_entry; "
        f"stage_entry('bomb', json.loads(pathlib.Path({str(tmp_path / 'entry.json')!r}).read_text()), "
        f"pathlib.Path({str(tmp_path / 'out')!r})); "
        "from blindspot.peak_memory import peak_rss_mib; print('peak_mib', peak_rss_mib())"
    )
    done = subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[1],
                          capture_output=True, text=True)  # fmt: skip
    peak_mb = float(done.stdout.split("peak_mib")[-1])
    print(f"peak RSS of staging the bomb: {peak_mb:.0f} MB")
    assert peak_mb < 1000  # staging peaks near 250 MB; with the header check removed it reached 6 GB
    assert pl.read_parquet(tmp_path / "out" / "rejects.parquet")["reason"].to_list() == ["image_too_large"]


# ------------------------------------------------------------------------------------------------ config


def base_config(**extra: object) -> dict:
    return {"benchmarks": {"b": {"adapter": "generic", "path": "x.parquet", "answer_type": "yes_no"}},
            "check_paths": False, **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"seed": 2**70}, "seed: Input should be less than or equal to 4294967295"),
        (
            {"models": {"m": {"adapter": "auto", "path": "p", "trust_remote_code": "yes"}}},
            "models.m.trust_remote_code: Input should be a valid boolean",
        ),
        ({"render": {"resize": {"upscale": "no"}}}, "render.resize.upscale: Input should be a valid boolean"),
    ],
)
def test_values_that_would_go_wrong_later_fail_validation(extra: dict, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(base_config(**extra))
    assert str(caught.value).startswith(line)


def test_check_paths_takes_exactly_true_or_false_from_the_command_line() -> None:
    assert parse_config(base_config(check_paths="false")).check_paths is False
    with pytest.raises(ConfigError, match="check_paths: Input should be a valid boolean"):
        parse_config(base_config(check_paths="no"))


def check_config_with_model(tmp_path: Path, name: str, model: Path) -> subprocess.CompletedProcess[str]:
    """`blindspot check-config` on a config with one (empty) benchmark and the model directory ``model``."""
    source = tmp_path / "b.jsonl"
    source.write_text("")
    config = {"benchmarks": {"b": {"adapter": "generic", "path": str(source), "answer_type": "yes_no"}},
              "models": {name: {"adapter": "qwen2_5_vl", "path": str(model)}}}  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    cli = Path(sys.executable).parent / "blindspot"
    return subprocess.run([str(cli), "check-config", str(path)], capture_output=True, text=True, env={**os.environ})


@pytest.mark.slow
def test_check_config_runs_the_model_directory_checks(tmp_path: Path) -> None:
    model = build_tiny_model("qwen2_5_vl", tmp_path / "qwen", seed=0)
    for weights in model.glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    result = check_config_with_model(tmp_path, "pickled", model)
    assert result.returncode == 2
    assert "models.pickled.path: " in result.stderr and "no .safetensors weights" in result.stderr


def _damage_truncate(model: Path) -> str:
    weights = sorted(model.glob("*.safetensors"))[0]
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a download cut short
    return f"'{weights}' is damaged: truncated"


def _damage_config(model: Path) -> str:
    (model / "config.json").write_text('{"model_type": "qwen2_5_vl", ')  # cut mid-object
    return f"'{model / 'config.json'}' is not valid JSON (line 1)"


def _damage_header(model: Path) -> str:
    weights = sorted(model.glob("*.safetensors"))[0]
    weights.write_bytes((2**40).to_bytes(8, "little") + weights.read_bytes()[8:])
    return f"'{weights}' is damaged: its header claims"


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_damage_truncate, _damage_config, _damage_header])
def test_a_damaged_model_directory_is_one_line_naming_the_key_and_the_file(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    """In check-config (before any job) and when a stage loads the model: one line, the config key, the file."""
    from blindspot.config import ModelConfig
    from blindspot.errors import BlindspotError
    from blindspot.models.loading import load_model

    model = build_tiny_model("qwen2_5_vl", tmp_path / "qwen", seed=0)
    expected = damage(model)
    result = check_config_with_model(tmp_path, "q", model)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "models.q.path: " in result.stderr and expected in result.stderr
    with pytest.raises(BlindspotError) as caught:
        load_model(ModelConfig(adapter="qwen2_5_vl", path=str(model)))
    assert "\n" not in str(caught.value) and expected in str(caught.value) and caught.value.key == "model.path"


def test_a_row_error_is_a_reject_but_the_machine_and_the_config_still_stop() -> None:
    from blindspot.benchmarks.sources import guarded_row
    from blindspot.contracts.items import Reject
    from blindspot.errors import BlindspotError

    def broken() -> None:
        int("not a number")

    reject = guarded_row(7, broken, "id7")
    assert isinstance(reject, Reject)
    assert (reject.source_index, reject.item_id, reject.reason) == (7, "id7", "bad_row")
    assert reject.message.startswith("the row could not be read (ValueError: invalid literal")
    for fatal in (OSError(28, "No space left on device"), BlindspotError("x", key="benchmark.path"), MemoryError()):

        def raising(error: BaseException = fatal) -> None:
            raise error

        with pytest.raises(type(fatal)):
            guarded_row(0, raising)
