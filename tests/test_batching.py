"""Length-bucketed batches and the automatic batch size: buckets cut padding and never change answers or their
order; batch_size auto halves on out-of-memory and keeps the size that fits; a fixed size that does not fit is one
line naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import with_a_long_question
from test_predict import run

import blindspot.models.answering as answering_module
from blindspot.config import ConfigError, ModelConfig, parse_config
from blindspot.models.batching import BatchMemoryError, BatchSizer, bucket_order


def padding_share(lengths: list[int]) -> float:
    """The share of a padded batch that is padding: ``1 - sum(len) / (n * max(len))``."""
    return 1.0 - sum(lengths) / (len(lengths) * max(lengths))


def test_bucket_order_is_stable_and_sorted() -> None:
    assert bucket_order([5, 3, 5, 1, 3]) == [3, 1, 4, 0, 2]
    assert bucket_order([]) == []


def test_buckets_cut_padding_on_mixed_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(20, 400, 256))
    size = 16

    def waste(order: list[int]) -> float:
        batches = [[lengths[i] for i in order[s : s + size]] for s in range(0, len(order), size)]
        return float(np.mean([padding_share(b) for b in batches]))

    unsorted, bucketed = waste(list(range(len(lengths)))), waste(bucket_order(lengths))
    assert unsorted > 0.3 and bucketed < unsorted / 4, (unsorted, bucketed)
    assert padding_share([10, 10]) == 0.0 and padding_share([5, 10]) == pytest.approx(0.25)


def oom_above(limit: int):  # type: ignore[no-untyped-def]
    def fn(piece: list[int]) -> list[int]:
        if len(piece) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [p * 10 for p in piece]

    return fn


def test_auto_halves_until_a_batch_fits_and_keeps_that_size() -> None:
    sizer = BatchSizer("auto", "cuda")
    assert sizer.size == 64
    assert sizer.run(list(range(100)), oom_above(20)) == [p * 10 for p in range(100)]
    assert sizer.size == 16 and sizer.halvings == [64, 32]
    assert sizer.note() == "batch_size auto: 16 (64, 32 ran out of memory)"
    assert BatchSizer("auto", "cpu").size == 8 and BatchSizer(3, "cuda").note() is None


def test_a_fixed_size_that_does_not_fit_is_one_line_naming_the_key() -> None:
    with pytest.raises(BatchMemoryError, match="a batch of 8 ran out of memory; lower it or set batch_size: auto"):
        BatchSizer(8, "cuda").run(list(range(10)), oom_above(4))
    with pytest.raises(BatchMemoryError, match="one unit alone"):
        BatchSizer("auto", "cuda").run([1, 2], oom_above(0))
    assert BatchMemoryError("x", key="model.batch_size").key == "model.batch_size"


def test_other_errors_are_not_taken_for_memory() -> None:
    def broken(piece: list[int]) -> list[int]:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        BatchSizer("auto", "cuda").run([1, 2, 3], broken)


@pytest.mark.slow
def test_auto_in_the_predict_stage_gives_the_fixed_sizes_answers(
    tiny_models: dict[str, Path],
    small_benchmark: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fixed = run(tiny_models, small_benchmark, tmp_path / "fixed.parquet", batch_size=3)
    real = answering_module.generate_batch

    def small_memory(loaded, requests, max_new_tokens):  # type: ignore[no-untyped-def]
        if len(requests) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return real(loaded, requests, max_new_tokens)

    monkeypatch.setattr(answering_module, "generate_batch", small_memory)
    auto = run(tiny_models, small_benchmark, tmp_path / "auto.parquet", batch_size="auto")  # type: ignore[arg-type]
    assert "predict m/b: batch_size auto: 2 (8, 4 ran out of memory)" in capsys.readouterr().out
    assert auto.select("item_id", "family", "level", "raw_text", "parsed").equals(
        fixed.select("item_id", "family", "level", "raw_text", "parsed")
    )
    a, b = (t["option_logprobs"].explode().to_numpy() for t in (auto, fixed))
    assert abs(a - b).max() < 1e-5
    assert isinstance(auto, pl.DataFrame)


def test_batch_size_and_gpu_in_the_config() -> None:
    assert ModelConfig(adapter="qwen2_5_vl", path="m", batch_size="auto").batch_size == "auto"
    assert ModelConfig(adapter="qwen2_5_vl", path="m", gpu=2).gpu == 2
    for bad in (0, "many", True, 2.0):
        with pytest.raises(ConfigError) as error:
            parse_config({"benchmarks": {"b": {"adapter": "generic", "path": "x", "answer_type": "open"}},
                          "models": {"m": {"adapter": "qwen2_5_vl", "path": "m", "batch_size": bad}}})  # fmt: skip
        assert str(error.value).splitlines() == [
            f"models.m.batch_size: a batch size is a positive integer or auto (got {json.dumps(bad)})"
        ]


@pytest.mark.slow
def test_the_predict_stage_batches_by_length_and_keeps_the_rows_order(
    tiny_models: dict[str, Path], small_benchmark: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first item gets a question 40 words long: in bucketed order it runs in the last batch, so the first
    batch of four short prompts is not padded to its length; the table still lists the items in their order."""
    items, long_id = with_a_long_question(small_benchmark["items"], tmp_path / "items.parquet", words=40)
    bench = {"items": items, "render": small_benchmark["render"]}
    batches: list[list[str]] = []
    real = answering_module.generate_batch

    def record(loaded, requests, max_new_tokens):  # type: ignore[no-untyped-def]
        batches.append([r.prompt for r in requests])
        return real(loaded, requests, max_new_tokens)

    monkeypatch.setattr(answering_module, "generate_batch", record)
    table = run(tiny_models, bench, tmp_path / "p.parquet", batch_size=4, conditions=["blur/0"])
    long_batches = [i for i, b in enumerate(batches) if any("why why" in p for p in b)]
    assert len(batches) == 2 and long_batches == [1]  # in source order it would pad the first batch
    assert table["item_id"].to_list()[0] == long_id  # rows in the items' order


def test_an_out_of_memory_error_names_the_key_it_is_given() -> None:
    """A swap job's model is its pair's base: its error names models.<base>.batch_size, not model.batch_size."""
    with pytest.raises(BatchMemoryError) as caught:
        BatchSizer(8, "cuda", key="models.qwen_base.batch_size").run(list(range(10)), oom_above(4))
    assert str(caught.value).startswith("models.qwen_base.batch_size: a batch of 8 ran out of memory")


@pytest.mark.slow
def test_the_swap_stage_names_its_base_models_batch_size(
    tiny_models: dict[str, Path], small_benchmark: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blindspot.stages.slices import SwapSlice, user_key
    from blindspot.stages.swap import run as run_swap
    from blindspot.stages.table import STAGES, JobContext

    def no_memory(loaded, requests, max_new_tokens):  # type: ignore[no-untyped-def]
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(answering_module, "generate_batch", no_memory)
    path = str(tiny_models["qwen2_5_vl"])
    config = parse_config({
        "benchmarks": {"b": {"adapter": "generic", "path": "x", "answer_type": "multiple_choice"}},
        "models": {"tiny_base": {"adapter": "qwen2_5_vl", "path": path, "batch_size": 2, "device": "cpu"}},
        "swap": {"pairs": {"p": {"base": "tiny_base", "donor": "tiny_base"}}, "specs": {"first_n": [1], "units": []}},
    })  # fmt: skip
    wildcards = {"pair": "p", "bench": "b"}
    spec = STAGES["swap"]
    swap_slice = spec.parse_slice(spec.slice_json(config, wildcards))
    assert isinstance(swap_slice, SwapSlice)
    inputs = {"item_table": small_benchmark["items"], "render": small_benchmark["render"]}
    outputs = {"swaps": tmp_path / "s.parquet", "answers": tmp_path / "a.parquet"}
    with pytest.raises(BatchMemoryError) as caught:
        run_swap(swap_slice, inputs, outputs, JobContext("swap", wildcards, progress=False))
    assert user_key(str(caught.value), wildcards).startswith("models.tiny_base.batch_size: a batch of 2 ran out")
