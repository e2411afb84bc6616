"""The predict stage: batch invariance, resume after a kill, conditions, and the predictions table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import with_a_long_question

import blindspot.models.answering as answering_module
from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import ModelConfig, PredictConfig, PromptConfig
from blindspot.contracts.tables import ITEMS_SCHEMA
from blindspot.models.loading import load_model
from blindspot.stages.predict import PredictError, predict_benchmark, select_conditions
from blindspot.store.render import RenderStore
from blindspot.store.tables import read_provenance, write_table


def run(
    tiny_models: dict[str, Path],
    bench: dict[str, Path],
    out: Path,
    family: str = "qwen2_5_vl",
    batch_size: int = 4,
    max_new_tokens: int = 6,
    **predict: object,
) -> pl.DataFrame:
    model = ModelConfig(
        adapter=family, path=str(tiny_models[family]), batch_size=batch_size, max_new_tokens=max_new_tokens
    )
    predict_benchmark(
        "m",
        "b",
        model,
        PredictConfig.model_validate(predict),
        PromptConfig(),
        bench["items"],
        bench["render"],
        out,
        scoring=GENERIC_SCORING,
        progress=False,
    )
    return pl.read_parquet(out)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_next"])
def test_batch_size_does_not_change_answers(tiny_models, small_benchmark, tmp_path: Path, family: str) -> None:
    one = run(tiny_models, small_benchmark, tmp_path / "bs1.parquet", family, batch_size=1)
    four = run(tiny_models, small_benchmark, tmp_path / "bs4.parquet", family, batch_size=4)
    assert one.select("item_id", "family", "level").equals(four.select("item_id", "family", "level"))
    assert one["raw_text"].to_list() == four["raw_text"].to_list()
    assert one["parsed"].to_list() == four["parsed"].to_list()
    a = one["option_logprobs"].explode().to_numpy()
    b = four["option_logprobs"].explode().to_numpy()
    assert abs(a - b).max() < 1e-5


def test_predictions_table(tiny_models, small_benchmark, tmp_path: Path) -> None:
    table = run(tiny_models, small_benchmark, tmp_path / "p.parquet")
    conditions = sorted(set(zip(table["family"], table["level"], strict=True)))
    assert conditions == [("blank", 1), ("blur", 0), ("blur", 1), ("noise", 1), ("none", 1)]
    assert table.height == 6 * 5
    assert set(table["outcome"]) <= {"correct", "wrong", "unparsed", "abstain"}
    assert (table["option_labels"].list.len() == 4).all()
    scored = [
        labels[max(range(4), key=lp.__getitem__)]
        for labels, lp in zip(table["option_labels"], table["option_logprobs"], strict=True)
    ]
    assert table["scored"].to_list() == scored
    record = read_provenance(tmp_path / "p.parquet")
    assert record["stage"] == "predict" and record["prompt_version"] == "v2"
    assert record["model"]["model_type"] == "qwen2_5_vl" and record["model"]["n_layers"] == 2
    assert (table["model"] == "m").all() and (table["benchmark"] == "b").all()
    assert not list(tmp_path.glob(".p.parquet.resume-*")), "shard folder left behind"
    # every row carries the prompt as the model saw it: the chat template and one image placeholder per image,
    # none under the no-image condition
    items = pl.read_parquet(small_benchmark["items"])
    first = table.filter(pl.col("item_id") == items["item_id"][0])
    with_image = first.filter(pl.col("family") == "blur")["prompt"].unique().to_list()
    without = first.filter(pl.col("family") == "none")["prompt"].to_list()
    assert len(with_image) == 1 and items["question"][0] in with_image[0] and "<|image_pad|>" in with_image[0]
    assert "<|im_start|>user" in with_image[0] and "<|image_pad|>" not in without[0]


def kill_on_batch(monkeypatch: pytest.MonkeyPatch, n: int) -> dict[str, int]:
    """Make the n-th generated batch raise KeyboardInterrupt (a kill); returns the batch counter."""
    real = answering_module.generate_batch
    calls = {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(answering_module, "generate_batch", dies)
    return calls


def test_resume_after_a_kill_gives_the_same_table(
    tiny_models, small_benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = run(tiny_models, small_benchmark, tmp_path / "ref.parquet", shard_size=7)

    calls = kill_on_batch(monkeypatch, 4)
    out = tmp_path / "resumed.parquet"
    with pytest.raises(KeyboardInterrupt):
        run(tiny_models, small_benchmark, out, shard_size=7)
    assert not out.exists()
    (shards,) = tmp_path.glob(".resumed.parquet.resume-*")
    finished = sorted(p.name for p in shards.iterdir())
    assert finished == ["shard-00000.parquet"]  # batches of 4 in shards of 7: 2 batches per shard

    calls["n"] = -(10**9)  # no more kills; count the batches the restart runs
    resumed = run(tiny_models, small_benchmark, out, shard_size=7)
    assert resumed.equals(reference)
    # 6 items x 5 units; shard_size 7 makes shards of whole items, ceil(7 / 5) = 2 items (10 units) each: 3 shards,
    # shard 0 reused. Batches of 4 never mix image and text-only units: shards 1 and 2 take 2 batches for their 8
    # image units and 1 for their 2 text-only units: 6 in all.
    assert calls["n"] == -(10**9) + 6


def test_condition_selection(small_benchmark) -> None:
    store = RenderStore(small_benchmark["render"])
    chosen = select_conditions(store, PredictConfig(conditions=["blur/1", "none"]))
    assert [c.key for c in chosen] == ["blur/0", "blur/1", "none/1"]
    with pytest.raises(PredictError, match=r"predict.conditions: 'blur/7' is not available .*\(not rendered\)"):
        select_conditions(store, PredictConfig(conditions=["blur/7"]))


def test_a_loaded_model_is_reused(tiny_models, small_benchmark, tmp_path: Path) -> None:
    model = ModelConfig(adapter="llava_next", path=str(tiny_models["llava_next"]), max_new_tokens=6)
    loaded = load_model(model)
    predict_benchmark(
        "m",
        "b",
        model,
        PredictConfig(conditions=["none"]),
        PromptConfig(),
        small_benchmark["items"],
        small_benchmark["render"],
        tmp_path / "x.parquet",
        loaded=loaded,
        scoring=GENERIC_SCORING,
        progress=False,
    )
    table = pl.read_parquet(tmp_path / "x.parquet")
    assert sorted(set(table["family"])) == ["blur", "none"]


def test_the_base_language_model_answers_the_llm_condition(tiny_models, small_benchmark, tmp_path: Path) -> None:
    """With `llm:` the predict stage also asks the base language model each question, text only; decay reports
    ML = max(0, S_wv - S_t) from exactly those rows."""
    from blindspot.config import DecayConfig
    from blindspot.models.tiny import build_tiny_language_model
    from blindspot.stages.decay import build_grid, decay_metrics

    llm = build_tiny_language_model(tmp_path / "llm", seed=3)
    model = ModelConfig(
        adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), llm=str(llm), batch_size=4, max_new_tokens=4
    )
    out = tmp_path / "p.parquet"
    predict_benchmark(
        "m",
        "b",
        model,
        PredictConfig(),
        PromptConfig(),
        small_benchmark["items"],
        small_benchmark["render"],
        out,
        scoring=GENERIC_SCORING,
        progress=False,
    )
    table = pl.read_parquet(out)
    text_only = table.filter(pl.col("family") == "llm")
    assert text_only.height == 6 and (text_only["level"] == 1).all()
    assert text_only["option_logprobs"].list.len().to_list() == [4] * 6  # scored like every closed answer
    config = DecayConfig(min_parsed=1, bootstrap=50, coarse_families=["blank", "noise", "none"])
    unread = table.filter(pl.col("family").is_in(["none", "llm"]) & (pl.col("outcome") == "unparsed"))
    if unread.height:  # the random tiny model rambles: ML from unread answers is withheld, with its reason
        rows, _ = decay_metrics(build_grid(table, ("blur", 0)), config, seed=0)
        (ml,) = [r for r in rows if r["metric"] == "ml"]
        assert ml["value"] is None and "answers parsed without the image" in ml["note"]
    # read every answer as its score says, and ML is max(0, S_wv - S_t) from exactly the llm rows
    table = table.with_columns(outcome=pl.when(pl.col("score") > 0).then(pl.lit("correct")).otherwise(pl.lit("wrong")))
    rows, _ = decay_metrics(build_grid(table, ("blur", 0)), config, seed=0)
    (ml,) = [r for r in rows if r["metric"] == "ml"]
    s_wv = table.filter(pl.col("family") == "none")["score"].mean()
    s_t = text_only["score"].mean()
    assert ml["value"] == pytest.approx(max(0.0, s_wv - s_t)) and ml["note"] == "max(0, S_wv - S_t)"


def test_ml_says_why_it_is_missing(tiny_models, small_benchmark, tmp_path: Path) -> None:
    from blindspot.config import DecayConfig
    from blindspot.stages.decay import build_grid, decay_metrics

    table = run(tiny_models, small_benchmark, tmp_path / "p.parquet")
    rows, _ = decay_metrics(build_grid(table, ("blur", 0)), DecayConfig(min_parsed=1, bootstrap=20), seed=0)
    (ml,) = [r for r in rows if r["metric"] == "ml"]
    assert ml["value"] is None and "set models.<name>.llm" in ml["note"]


def test_a_damaged_shard_is_redone_not_trusted(
    tiny_models, small_benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A shard torn by a crash or a damaged disk is discarded (said on the console) and redone: the resumed
    table equals an uninterrupted run's."""
    reference = run(tiny_models, small_benchmark, tmp_path / "ref.parquet", shard_size=7)
    calls = kill_on_batch(monkeypatch, 5)
    out = tmp_path / "resumed.parquet"
    with pytest.raises(KeyboardInterrupt):
        run(tiny_models, small_benchmark, out, shard_size=7)
    (shards,) = tmp_path.glob(".resumed.parquet.resume-*")
    first = sorted(shards.iterdir())[0]
    first.write_bytes(first.read_bytes()[:100])  # torn
    calls["n"] = -(10**9)
    resumed = run(tiny_models, small_benchmark, out, shard_size=7)
    assert resumed.equals(reference)
    assert "discarding the shard 'shard-00000.parquet' of an earlier run (unreadable" in capsys.readouterr().out


def test_a_prompt_over_the_cap_is_not_run_and_says_why(
    tiny_models, small_benchmark, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An item whose prompt is longer than max_prompt_tokens is not run (no allocation for it): its predictions
    are unparsed with the reason in `note`; the other items run as usual."""
    path, long_id = with_a_long_question(small_benchmark["items"], tmp_path / "items.parquet")
    model = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]), batch_size=4, max_new_tokens=6,
                        max_prompt_tokens=256)  # fmt: skip
    out = tmp_path / "p.parquet"
    predict_benchmark("m", "b", model, PredictConfig(), PromptConfig(), path, small_benchmark["render"], out,
                      scoring=GENERIC_SCORING, progress=False)  # fmt: skip
    table = pl.read_parquet(out)
    first = table.filter(pl.col("item_id") == long_id)
    assert first.height > 0 and set(first["outcome"]) == {"unparsed"} and set(first["raw_text"]) == {""}
    assert first["note"][0].startswith("not run: a prompt of ") and "exceeds 256" in first["note"][0]
    others = table.filter(pl.col("item_id") != long_id)
    assert others["note"].null_count() == others.height and set(others["raw_text"]) != {""}
    assert "item(s) not run: prompt longer than 256 tokens" in capsys.readouterr().out


def test_new_weights_between_a_kill_and_the_rerun_never_mix(
    tiny_models, small_benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resume folder is keyed by a sha256 of the model's files: weights replaced between a kill and the rerun
    start a new folder, so the table is entirely the new model's (and provenance records its fingerprint)."""
    from blindspot.models.tiny import build_tiny_model
    from blindspot.store.tables import read_provenance

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_models["qwen2_5_vl"], model_dir)
    calls = kill_on_batch(monkeypatch, 4)
    out = tmp_path / "p.parquet"
    with pytest.raises(KeyboardInterrupt):
        run({"qwen2_5_vl": model_dir}, small_benchmark, out, shard_size=7)
    (old_folder,) = tmp_path.glob(".p.parquet.resume-*")
    build_tiny_model("qwen2_5_vl", model_dir, seed=5)  # other weights at the same path
    calls["n"] = -(10**9)
    resumed = run({"qwen2_5_vl": model_dir}, small_benchmark, out, shard_size=7)
    assert calls["n"] == -(10**9) + 9  # all 9 batches ran again: nothing was taken from the old folder
    fresh = run({"qwen2_5_vl": model_dir}, small_benchmark, tmp_path / "fresh.parquet", shard_size=7)
    assert resumed.equals(fresh)
    # the other weights' shards were not reused; once this output is finished they can never be, so they are gone
    assert not old_folder.exists()
    assert read_provenance(out)["weights_sha256"] == read_provenance(tmp_path / "fresh.parquet")["weights_sha256"]


def test_a_finished_job_removes_stale_resume_folders_of_its_output(
    tiny_models, small_benchmark, tmp_path: Path
) -> None:
    """A run with other inputs that never finished left its resume folder beside the output; its shards can never
    be reused, so the next finished job removes it (and nothing of other outputs)."""
    out = tmp_path / "p.parquet"
    stale = tmp_path / ".p.parquet.resume-0123456789abcdef"
    other = tmp_path / ".q.parquet.resume-0123456789abcdef"
    for folder in (stale, other):
        folder.mkdir()
        (folder / "shard-00000.parquet").write_bytes(b"old")
    run(tiny_models, small_benchmark, out, conditions=["blur/0"])
    assert out.is_file() and not stale.exists() and other.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".p.parquet")] == []


def test_a_margin_only_run_answers_from_the_option_log_probs_in_one_prefill(
    tiny_models, small_benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_new_tokens: 0 never generates; each answer is the most likely option (`scored`), with the log-probs a
    generating run reports at its first answer token; an open item is left unanswered, with a note."""
    import transformers

    from blindspot.models.inference import MARGIN_ONLY_NOTE

    generating = run(tiny_models, small_benchmark, tmp_path / "g.parquet", max_new_tokens=3)

    def no_generation(*args: object, **kwargs: object) -> None:
        raise AssertionError("a margin-only run generated")

    monkeypatch.setattr(transformers.GenerationMixin, "generate", no_generation)
    margin = run(tiny_models, small_benchmark, tmp_path / "m.parquet", max_new_tokens=0)
    assert margin.height == generating.height
    assert margin["parsed"].to_list() == margin["scored"].to_list() == generating["scored"].to_list()
    for a, b in zip(margin["option_logprobs"].to_list(), generating["option_logprobs"].to_list(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert margin.filter(pl.col("parsed") == pl.col("gold"))["outcome"].unique().to_list() == ["correct"]

    items = pl.read_parquet(small_benchmark["items"])
    open_items = items.with_columns(pl.lit("open").alias("answer_type"), pl.lit(None).alias("options"))
    open_path = tmp_path / "open_items.parquet"
    write_table(open_items.to_arrow(), ITEMS_SCHEMA, read_provenance(small_benchmark["items"]), open_path)
    unanswered = run(tiny_models, {**small_benchmark, "items": open_path}, tmp_path / "o.parquet",
                     max_new_tokens=0)  # fmt: skip
    assert unanswered["parsed"].null_count() == unanswered.height
    assert unanswered["note"].unique().to_list() == [MARGIN_ONLY_NOTE]
