"""The aggregate stage: tables against hand-computed values, every plot, the report in a real headless Chromium.

The fixture is a results folder built here: a staged and rendered 6-item benchmark, predictions of two models
written by hand (so every decay number is known), the real decay stage run on them, and hand-written probe, swap
and patch tables.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from blindspot.benchmarks.registry import GENERIC_SCORING
from blindspot.config import DecayConfig, ReportConfig
from blindspot.contracts.tables import (
    DECAY_METRICS_SCHEMA,
    KNOCKOUT_SCHEMA,
    LENS_SCHEMA,
    PATCHES_SCHEMA,
    PREDICTIONS_SCHEMA,
    PROBES_SCHEMA,
    REJECTS_SCHEMA,
    SWAP_SCHEMA,
)
from blindspot.stages.aggregate import plots
from blindspot.stages.aggregate.layout import AGGREGATE_VERSION, AggregateSlice, output_paths
from blindspot.stages.aggregate.run import aggregate
from blindspot.stages.aggregate.tables import (
    DECAY_TABLE_SCHEMA,
    PROVENANCE_SCHEMA,
    SUMMARY_SCHEMA,
    decay_table,
    summary_table,
)
from blindspot.stages.decay import decay_benchmark
from blindspot.stages.knockout import left_out_row
from blindspot.store.tables import read_provenance, write_table

BENCH = "small"
CONDITIONS = [("blur", 0, 1.0), ("blur", 1, 25.0), ("blank", 1, 0.0), ("noise", 1, 0.0)]


def answers_m1(i: int, gold: str, wrong: str, family: str, level: int) -> str | None:
    """m1: right on every clean image; keeps items 0-2 under blur; only item 0 without an informative image.
    So: item 0 language prior, items 1-2 coarse visual, items 3-5 fine visual."""
    if family == "blur":
        return gold if level == 0 or i < 3 else wrong
    return gold if i == 0 else wrong


def answers_m2(i: int, gold: str, wrong: str, family: str, level: int) -> str | None:
    """m2: gold everywhere except item 5, unreadable at blur/1. So items 0-4 language prior, item 5 fine visual."""
    return None if (i == 5 and (family, level) == ("blur", 1)) else gold


def write_predictions(path: Path, model: str, items: pl.DataFrame, answer: Any) -> None:
    rows = []
    for i, item in enumerate(items.iter_rows(named=True)):
        gold = item["answer"]
        wrong = "A" if gold != "A" else "B"
        for family, level, param in CONDITIONS:
            parsed = answer(i, gold, wrong, family, level)
            outcome = "unparsed" if parsed is None else ("correct" if parsed == gold else "wrong")
            rows.append(
                {
                    "model": model,
                    "benchmark": BENCH,
                    "item_id": item["item_id"],
                    "family": family,
                    "level": level,
                    "param": param,
                    "answer_type": "multiple_choice",
                    "gold": gold,
                    "n_options": len(item["options"]),
                    "raw_text": parsed or "I cannot tell.",
                    "parsed": parsed,
                    "outcome": outcome,
                    "score": 1.0 if outcome == "correct" else 0.0,
                    "option_labels": None,
                    "option_logprobs": None,
                    "scored": parsed,
                    "first_token_is_label": False,
                }
            )
    record = {
        "stage": "predict",
        "adapter": "generic",
        "model_name": model,
        "benchmark": BENCH,
        "model": {"model_path": f"models/{model}", "revision": "abc123"},
        "weights_sha256": f"w-{model}",
    }
    write_table(rows, PREDICTIONS_SCHEMA, record, path)


def probe_rows(model: str) -> list[dict[str, Any]]:
    return [
        {
            "model": model,
            "benchmark": BENCH,
            "feature": "last_token",
            "target": "gold",
            "probe": "mlp",
            "level": "blur/0",
            "layer": layer,
            "subset": "all",
            "accuracy": 0.5 + 0.1 * layer,
            "accuracy_ci_low": 0.4 + 0.1 * layer,
            "accuracy_ci_high": 0.6 + 0.1 * layer,
            "control_accuracy": 0.3,
            "selectivity": 0.2 + 0.1 * layer,
            "selectivity_ci_low": 0.1,
            "selectivity_ci_high": 0.5,
            "p_gold": 0.4,
            "p_prior": 0.2,
            "n": 6,
            "n_classes": 4,
        }
        for layer in range(3)
    ]


def swap_rows() -> list[dict[str, Any]]:
    def row(spec: str, kind: str, layers: list[int], follow: float) -> dict[str, Any]:
        return {
            "pair": "p",
            "benchmark": BENCH,
            "base": "m1",
            "donor": "m2",
            "spec": spec,
            "kind": kind,
            "layers": layers,
            "units": [],
            "family": "blur",
            "level": 0,
            "param": 1.0,
            "n": 6,
            "n_prior_differs": 4,
            "accuracy": 0.5,
            "accuracy_ci_low": 0.3,
            "accuracy_ci_high": 0.7,
            "flip_vs_base": 0.0,
            "flip_vs_base_ci_low": 0.0,
            "flip_vs_base_ci_high": 0.1,
            "flip_vs_donor": 0.5,
            "flip_vs_donor_ci_low": 0.3,
            "flip_vs_donor_ci_high": 0.7,
            "follow_prior": 1 - follow,
            "follow_prior_ci_low": 0.0,
            "follow_prior_ci_high": 1.0,
            "follow_image": follow,
            "follow_image_ci_low": follow - 0.1,
            "follow_image_ci_high": follow + 0.1,
            "note": None,
        }

    return [
        row("base", "reference", [], 0.1),
        row("layer_0", "window", [0], 0.6),
        row("donor", "reference", [0, 1], 0.9),
    ]


def patch_rows() -> list[dict[str, Any]]:
    return [
        {
            "model": "m1",
            "benchmark": BENCH,
            "source": "blur/0",
            "target": "blur/1",
            "position": "image",
            "layer": layer,
            "n": 6,
            "ld": -1.0,
            "ld_ci_low": -1.5,
            "ld_ci_high": -0.5,
            "restored": restored,
            "restored_ci_low": restored - 0.1,
            "restored_ci_high": restored + 0.1,
            "n_restorable": 3,
            "flip_rate": 0.5,
            "flip_rate_ci_low": 0.2,
            "flip_rate_ci_high": 0.8,
            "n_flippable": 3,
            "method": "replay",
            "note": None,
        }
        for layer, restored in enumerate((1.0, 0.6, 0.2))
    ]


def _measure(level: str, lens: str | None, layer: int, measure: str, value: float, half: float = 0.1) -> dict:
    where = {"model": "m1", "benchmark": BENCH, "level": level, "lens": lens, "layer": layer, "measure": measure}
    return where | {"value": value, "value_ci_low": value - half, "value_ci_high": value + half, "n": 6, "note": None}


def lens_rows() -> list[dict[str, Any]]:
    """m1 reads the image in decoder layer 1: the gold margin rises after it, its attention peaks there and falls
    with blur; the prior overtakes gold at point 3 in half of the prior-differs items."""
    rows = []
    for level, fall in (("blur/0", 1.0), ("blur/1", 0.3)):
        for lens in ("logit", "tuned"):
            rows += [_measure(level, lens, p, "margin_gold", m * fall) for p, m in enumerate((-0.5, 0.0, 2.0, 1.0))]
            emerged = 2.0 if level == "blur/0" else 2.5
            per_condition = (("emergence", emerged), ("overtaken", 0.5), ("overtake_layer", 3.0))
            rows += [_measure(level, lens, -1, name, value) for name, value in per_condition]
        rows += [_measure(level, None, layer, "attention_image", mass * fall, 0.05)
                 for layer, mass in enumerate((0.01, 0.6, 0.02))]  # fmt: skip
    return rows


def knockout_rows() -> list[dict[str, Any]]:
    def window(model: str, start: int, size: int, flips: float) -> dict[str, Any]:
        return {"model": model, "benchmark": BENCH, "condition": "blur/0", "position": "last", "window_start": start,
                "window_size": size, "n": 6, "delta_margin": -flips * 3, "delta_margin_ci_low": -flips * 3 - 0.5,
                "delta_margin_ci_high": -flips * 3 + 0.5, "flip_rate": flips, "flip_rate_ci_low": max(flips - 0.2, 0),
                "flip_rate_ci_high": min(flips + 0.2, 1), "agree_no_image": 0.8 if size == 3 else None,
                "agree_no_image_ci_low": 0.6 if size == 3 else None,
                "agree_no_image_ci_high": 1.0 if size == 3 else None, "note": None}  # fmt: skip

    return [window("m1", 0, 1, 0.0), window("m1", 1, 1, 0.83), window("m1", 2, 1, 0.17), window("m1", 0, 3, 0.9)]


@pytest.fixture
def results(tmp_path: Path, small_benchmark: dict[str, Path]) -> Path:
    root = tmp_path / "results"
    staged = root / "staged" / BENCH
    staged.mkdir(parents=True)
    shutil.copy(small_benchmark["items"], staged / "items.parquet")
    rejects = [
        {"benchmark": BENCH, "source_index": i, "item_id": None, "reason": "image", "message": "bad"} for i in (6, 7)
    ]
    write_table(rejects, REJECTS_SCHEMA, {"stage": "stage", "benchmark": BENCH}, staged / "rejects.parquet")
    shutil.copytree(small_benchmark["render"], root / "render" / f"{BENCH}.zarr")
    items = pl.read_parquet(staged / "items.parquet")
    for model, answer in (("m1", answers_m1), ("m2", answers_m2)):
        predictions = root / "predictions" / model / f"{BENCH}.parquet"
        predictions.parent.mkdir(parents=True)
        write_predictions(predictions, model, items, answer)
        decay = root / "decay" / model
        outputs = {
            "metrics": decay / f"{BENCH}.parquet",
            "classes": decay / f"{BENCH}.items.parquet",
            "manifest": decay / f"{BENCH}.manifest.json",
        }
        config = DecayConfig(min_parsed=1, bootstrap=50, coarse_families=["blank", "noise"])
        decay_benchmark(
            predictions, staged / "items.parquet", config, 0, outputs, model, BENCH, scoring=GENERIC_SCORING
        )
        write_table(probe_rows(model), PROBES_SCHEMA, {"stage": "probe"}, root / "probes" / model / f"{BENCH}.parquet")
    write_table(swap_rows(), SWAP_SCHEMA, {"stage": "swap"}, root / "swaps" / "p" / f"{BENCH}.parquet")
    write_table(patch_rows(), PATCHES_SCHEMA, {"stage": "patch"}, root / "patches" / "m1" / f"{BENCH}.parquet")
    write_table(lens_rows(), LENS_SCHEMA, {"stage": "lens"}, root / "lens" / "m1" / f"{BENCH}.parquet")
    write_table(lens_rows()[:0], LENS_SCHEMA, {"stage": "lens"}, root / "lens" / "m2" / f"{BENCH}.parquet")
    write_table(knockout_rows(), KNOCKOUT_SCHEMA, {"stage": "knockout"}, root / "knockout" / "m1" / f"{BENCH}.parquet")
    left_out = {"model": "m2", "benchmark": BENCH} | left_out_row("blur/0", "m2 left out: its attention is its own")
    write_table([left_out], KNOCKOUT_SCHEMA, {"stage": "knockout"}, root / "knockout" / "m2" / f"{BENCH}.parquet")
    return root


def slice_for(**overrides: Any) -> AggregateSlice:
    values: dict[str, Any] = {
        "output_version": AGGREGATE_VERSION,
        "models": ["m1", "m2"],
        "benchmarks": [BENCH],
        "pairs": ["p"],
        "patch_models": ["m1"],
        "lens_models": ["m1", "m2"],
        "knockout_models": ["m1", "m2"],
        "compare_pairs": [("m1", "m2")],
        "blur_family": "blur",
        "mostly_unparsed": 0.5,
        "margin_threshold": 1.0,
        "report": ReportConfig(browser_items=4),
    }
    return AggregateSlice.model_validate(values | overrides)


def row(frame: pl.DataFrame, **keys: Any) -> dict[str, Any]:
    hit = frame.filter(pl.all_horizontal(pl.col(k) == v for k, v in keys.items()))
    assert hit.height == 1, (keys, hit)
    return hit.row(0, named=True)


# ------------------------------------------------------------------------------------------------ tables


def long_rows(model: str, rows: list[tuple[str, int, str, float | None, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "model": model,
                "benchmark": "b",
                "family": f,
                "level": lv,
                "param": 5.0 if f == "blur" else None,
                "metric": m,
                "value": v,
                "ci_low": None if v is None else v - 0.1,
                "ci_high": None if v is None else v + 0.1,
                "n": n,
                "note": "no S_t" if v is None else None,
            }
            for f, lv, m, v, n in rows
        ],
        schema=pl.Schema(DECAY_METRICS_SCHEMA),
    )


def test_decay_table_puts_each_metric_in_its_column() -> None:
    frame = long_rows(
        "m",
        [
            ("blur", 1, "identical_rate", 0.75, 4),
            ("blur", 1, "accuracy", 0.6, 5),
            ("blur", 1, "accuracy_c1", 1.0, 3),
            ("blur", 1, "margin_survival_rate", 0.5, 2),
            ("blur", 1, "share_unparsed", 0.2, 5),
            ("blur", 1, "n_unparsed", 1.0, 5),
            ("blur", 1, "official_f1", 0.7, 5),
            ("all", -1, "c_rate", 0.5, 4),
        ],
    )
    table = pl.from_arrow(decay_table(frame))
    assert isinstance(table, pl.DataFrame)
    assert table.schema == pl.Schema(DECAY_TABLE_SCHEMA)
    assert table.height == 1  # the summary row (family all) is not a condition
    r = table.row(0, named=True)
    assert (r["e"], r["n_e"], r["accuracy"], r["n"], r["accuracy_c"], r["n_c"]) == (0.75, 4, 0.6, 5, 1.0, 3)
    assert r["e_ci_low"] == pytest.approx(0.65) and r["accuracy_ci_high"] == pytest.approx(0.7)
    assert r["margin_survival"] == 0.5 and r["share_unparsed"] == 0.2 and r["share_abstain"] is None
    assert r["official"] == [{"metric": "f1", "value": 0.7, "ci_low": 0.7 - 0.1, "ci_high": 0.7 + 0.1}]


def test_summary_table_from_summary_rows_classes_and_rejects() -> None:
    frame = long_rows("m", [("all", -1, "c_rate", 0.5, 4), ("all", -1, "mg", 0.25, 4), ("all", -1, "ml", None, 0)])
    classes = pl.DataFrame({"model": ["m"] * 3, "benchmark": ["b"] * 3, "vision_indispensable": [True, False, True]})
    rejects = pl.DataFrame(
        {"benchmark": ["b", "b", "b", "other"], "reason": ["no_image", "bad_image", "no_image", "x"]}
    )
    table = pl.from_arrow(summary_table(frame, classes, rejects))
    assert isinstance(table, pl.DataFrame) and table.schema == pl.Schema(SUMMARY_SCHEMA)
    r = table.row(0, named=True)
    assert (r["c_rate"], r["c_rate_ci_low"], r["mg"], r["n_items"]) == (0.5, 0.4, 0.25, 3)
    assert r["n_vision_indispensable"] == 2 and r["n_rejected"] == 3
    assert r["rejected_reasons"] == "no_image: 2, bad_image: 1"  # most frequent first
    assert r["ml"] is None and r["ml_note"] == "no S_t"


def test_a_withheld_metric_and_a_mostly_unparsed_benchmark_show_everywhere() -> None:
    """Summary table, console and report: the reading shares, the notes of withheld values and the warning line
    (first on the console and above the report's navigation), never 0.0 for a withheld value."""
    from blindspot.stages.aggregate import html
    from blindspot.stages.aggregate.run import format_summary
    from blindspot.stages.aggregate.sentences import summary_sentences

    frame = long_rows(
        "m",
        [("all", -1, "share_unparsed_answers", 0.8, 10), ("all", -1, "share_abstain_answers", 0.05, 10),
         ("all", -1, "share_hedged_answers", 0.1, 10), ("all", -1, "accuracy_clean", None, 10),
         ("all", -1, "c_rate", None, 10), ("all", -1, "c_rate_margin", None, 10)],
    )  # fmt: skip
    classes = pl.DataFrame({"model": ["m"] * 10, "benchmark": ["b"] * 10, "vision_indispensable": [False] * 10})
    table = pl.from_arrow(summary_table(frame, classes, pl.DataFrame(), mostly_unparsed=0.5))
    assert isinstance(table, pl.DataFrame)
    r = table.row(0, named=True)
    assert r["share_unparsed_answers"] == 0.8 and r["c_rate"] is None and r["c_rate_note"] == "no S_t"
    assert r["accuracy_clean_note"] == "no S_t" and r["c_rate_margin_note"] == "no S_t"
    assert r["warning"].startswith("WARNING: 80% of m's answers on b could not be read")
    console = format_summary(table)
    assert "| unparsed " in console and "0.800" in console and "0.000" not in console
    (sentence,) = summary_sentences(table)
    assert sentence.startswith("WARNING: 80%") and "80.0% of its answers could not be read (unparsed)" in sentence
    assert "Survival by identity (C) is unavailable: no S_t" in sentence
    page = html.page("t", [("a", "A", "<p>x</p>")], [r["warning"]])
    assert page.index('class="warning"') < page.index("<nav>")
    assert pl.from_arrow(summary_table(frame, classes, pl.DataFrame(), mostly_unparsed=0.9))["warning"][0] is None


def test_the_summary_warns_where_one_answer_type_is_mostly_unread_and_withholds_its_classes() -> None:
    """A third of all answers unread, all of them yes/no: the warning names the yes/no answers; class shares
    withheld by decay stay null in the summary, their reason in share_classes_note and in the sentence."""
    from blindspot.stages.aggregate.sentences import summary_sentences

    frame = long_rows(
        "m",
        [("all", -1, "share_unparsed_answers", 1 / 3, 30), ("all", -1, "share_unparsed_answers_yes_no", 1.0, 10),
         ("all", -1, "share_unparsed_answers_multiple_choice", 0.0, 20), ("all", -1, "share_fine_visual", None, 30)],
    )  # fmt: skip
    classes = pl.DataFrame({"model": ["m"] * 30, "benchmark": ["b"] * 30, "vision_indispensable": [False] * 30})
    table = pl.from_arrow(summary_table(frame, classes, pl.DataFrame(), mostly_unparsed=0.5))
    assert isinstance(table, pl.DataFrame)
    r = table.row(0, named=True)
    assert r["warning"].startswith("WARNING: 100% of its yes_no answers on b could not be read")
    assert r["share_fine_visual"] is None and r["share_classes_note"] == "no S_t"
    assert "Item classes are withheld: no S_t" in summary_sentences(table)[0]


def test_aggregate_tables_against_hand_counts(results: Path) -> None:
    config = slice_for()
    aggregate(config, results)
    out = output_paths(config, results)
    decay = pl.read_parquet(out["table_decay"])
    # m1 at blur/1 keeps items 0-2 of 6: accuracy and E are 3/6; every answer read.
    r = row(decay, model="m1", family="blur", level=1)
    assert (r["accuracy"], r["e"], r["n"], r["param"]) == (0.5, 0.5, 6, 25.0)
    assert (r["share_correct"], r["share_wrong"], r["share_unparsed"]) == (0.5, 0.5, 0.0)
    # C subset of m1 is items 0-2, all right at blur/1.
    assert (r["accuracy_c"], r["n_c"]) == (1.0, 3)
    # m2: item 5 unreadable at blur/1.
    r = row(decay, model="m2", family="blur", level=1)
    assert r["share_unparsed"] == pytest.approx(1 / 6) and r["accuracy"] == pytest.approx(5 / 6)
    assert decay.height == 2 * len(CONDITIONS)

    summary = pl.read_parquet(out["table_summary"])
    m1, m2 = row(summary, model="m1"), row(summary, model="m2")
    assert m1["c_rate"] == 0.5 and m2["c_rate"] == pytest.approx(5 / 6)
    assert m1["c_rate_ci_low"] < 0.5 < m1["c_rate_ci_high"]
    assert (m1["share_language_prior"], m1["share_coarse_visual"], m1["share_fine_visual"]) == pytest.approx(
        (1 / 6, 2 / 6, 3 / 6)
    )
    assert (m1["n_vision_indispensable"], m2["n_vision_indispensable"]) == (5, 1)
    assert m1["n_rejected"] == 2 and m1["n_items"] == 6
    assert m1["c_chance"] == pytest.approx((1 / 4) ** 1)  # one blur level past the clean image, four options
    assert m1["mg"] is None and "none" in m1["mg_note"]

    probes = pl.read_parquet(out["table_probes"])
    assert probes.height == 6 and sorted(probes["model"].unique()) == ["m1", "m2"]
    assert pl.read_parquet(out["table_swaps"]).height == 3 and pl.read_parquet(out["table_patches"]).height == 3

    provenance = pl.read_parquet(out["table_provenance"])
    assert provenance.schema == pl.Schema(PROVENANCE_SCHEMA)
    predictions = row(provenance, output="predictions/m1/small.parquet")
    assert (predictions["model_revision"], predictions["weights_sha256"]) == ("abc123", "w-m1")
    # items, rejects, render, per model x4, swap, patch, lens and knockout per model
    assert provenance.height == 1 + 1 + 1 + 2 * 4 + 1 + 1 + 2 + 2
    decay = row(provenance, output="decay/m1/small.parquet")
    slice_ = json.loads(decay["config"])  # the slice the output was made from, as JSON; hashed to config_hash
    assert slice_["decay"]["bootstrap"] == 50 and slice_["decay"]["coarse_families"] == ["blank", "noise"]
    assert hashlib.sha256(decay["config"].encode()).hexdigest()[:16] == decay["config_hash"]
    assert predictions["config"] is None  # this test's hand-written record has no slice: null, not "{}"
    assert read_provenance(out["table_summary"])["stage"] == "aggregate"


@pytest.mark.slow
def test_report_sentences_and_console(results: Path) -> None:
    console = aggregate(slice_for(), results)
    page = (results / "report.html").read_text()
    assert "By identity, 50.0% [" in page and "of m1&#x27;s answers survive every blur level; chance is 25.0%" in page
    assert "On small, m1 answers 6 items with clean accuracy" in page
    assert "5 of 6 items are vision-indispensable" in page
    assert "Staging rejected 2 source rows of small" in page
    assert "moves follow-image from 10.0% to 60.0% [50.0, 70.0]; the whole donor reaches 90.0%" in page
    assert "restores at least half of the logit difference at 2 of 3 layers, the deepest being layer 1" in page
    assert console[-1] == f"report: {results / 'report.html'}"
    assert "m1" in console[-2] and "0.5" in console[-2]


def test_lens_and_knockout_sections_say_where_the_image_is_read_and_name_a_model_left_out(results: Path) -> None:
    console = aggregate(slice_for(), results)
    page = (results / "report.html").read_text()
    assert "m1&#x27;s answer stays on top through the tuned lens from point 2.0 [1.9, 2.1] on the clean view" in page
    assert "the prior overtakes a gold answer that led in 50.0% [40.0, 60.0] of the 6 items" in page
    assert "at point 3.0 [2.9, 3.1] on average" in page
    assert "attention on the image peaks in decoder layer 1 at 60.0% [55.0, 65.0] on the clean view" in page
    assert "blocking the answer position from the image in decoder layer 1 flips 83.0% [63.0, 100.0]" in page
    assert "no other window flips more than 17.0%" in page and "agrees with the no-image answer on 80.0%" in page
    assert any("m2 left out: its attention is its own" in line for line in console)
    assert "m2 left out: its attention is its own" in page
    for name in ("lens_m1", "lens_m2", "knockout_m1", "knockout_m2"):
        assert (results / "plots" / f"{name}.png").stat().st_size > 2000, name
    assert pl.read_parquet(results / "tables" / "knockouts.parquet").height == 5
    assert pl.read_parquet(results / "tables" / "lens.parquet").height == len(lens_rows())


def test_the_comparison_section_gives_paired_differences_with_adjusted_p_and_mde(results: Path) -> None:
    aggregate(slice_for(compare={"bootstrap": 50}), results)
    table = pl.read_parquet(results / "tables" / "comparisons.parquet")
    assert table.height > 0 and set(table["model_a"]) == {"m1"} and set(table["model_b"]) == {"m2"}
    clean = row(table, family="blur", level=0)
    m1 = pl.read_parquet(results / "predictions" / "m1" / f"{BENCH}.parquet").filter(pl.col("level") == 0)
    m2 = pl.read_parquet(results / "predictions" / "m2" / f"{BENCH}.parquet").filter(pl.col("level") == 0)
    blur = (pl.col("family") == "blur") & (pl.col("level") == 0)
    by_hand = m1.filter(blur)["score"].mean() - m2.filter(blur)["score"].mean()  # type: ignore[operator]
    assert clean["difference"] == pytest.approx(by_hand) and clean["adjust"] == "holm"
    page = (results / "report.html").read_text()
    assert "m1 and m2 differ in" in page and "benchmark x condition cells (Holm-adjusted McNemar p &lt; 0.05)" in page
    assert (results / "plots" / "comparisons.png").stat().st_size > 2000


def test_lens_figure_is_a_heatmap_by_level_and_attention_curves_and_knockout_leaves_out_the_whole_window() -> None:
    names = {(BENCH, "blur/0"): "clean", (BENCH, "blur/1"): "blur k=25"}
    lens = plots.lens_figure(pl.DataFrame(lens_rows(), schema=pl.Schema(LENS_SCHEMA)), "m1", names)
    heatmap, curves = lens.axes[:2]  # then the heatmap's colour bar
    assert [t.get_text() for t in heatmap.get_xticklabels()] == ["clean", "blur k=25"]
    assert heatmap.images[0].get_array().shape == (4, 2)
    assert "tuned lens" in heatmap.get_title()
    assert [line.get_label() for line in curves.get_lines()] == ["clean", "blur k=25"]
    assert list(curves.get_lines()[0].get_ydata()) == [0.01, 0.6, 0.02]
    knockout = plots.knockout_curves(pl.DataFrame(knockout_rows(), schema=pl.Schema(KNOCKOUT_SCHEMA)), "m1", names)
    (line,) = knockout.axes[0].get_lines()[:1]
    assert list(line.get_xdata()) == [0, 1, 2] and "clean" in line.get_label()


@pytest.mark.slow
def test_missing_outputs_are_said_not_fatal(results: Path) -> None:
    (results / "swaps" / "p" / f"{BENCH}.parquet").unlink()
    console = aggregate(slice_for(patch_models=[]), results)
    assert any("1 swap output(s) not produced yet" in line for line in console)
    page = (results / "report.html").read_text()
    assert "1 swap output(s) not produced yet" in page
    assert "No model is configured for activation patching" in page
    assert pl.read_parquet(results / "tables" / "swaps.parquet").height == 0
    assert not (results / "plots" / "patches_m1.png").exists()
    assert (results / "plots" / "swaps.png").stat().st_size > 0


# ------------------------------------------------------------------------------------------------ plots


def labels_of(figure: Any) -> list[str]:
    out = [figure._suptitle.get_text()] if figure._suptitle is not None else []
    for ax in figure.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return [t for t in out if t]


@pytest.mark.slow
def test_every_plot_is_written_with_labels(results: Path) -> None:
    config = slice_for()
    aggregate(config, results)
    for name, path in output_paths(config, results).items():
        if name.startswith(("plot_", "svg_")):
            assert path.stat().st_size > 2000, name
    decay = pl.read_parquet(results / "tables" / "decay.parquet")
    summary = pl.read_parquet(results / "tables" / "summary.parquet")
    figures = {
        "decay": plots.decay_curves(decay, BENCH, "blur", 0.25),
        "c_rate": plots.c_rates(summary),
        "classes": plots.class_shares(summary),
        "probes": plots.probe_curves(pl.read_parquet(results / "tables" / "probes.parquet"), "m1"),
        "swaps": plots.swap_heatmap(pl.read_parquet(results / "tables" / "swaps.parquet")),
        "patches": plots.patch_curves(pl.read_parquet(results / "tables" / "patches.parquet"), "m1"),
    }
    for name, figure in figures.items():
        texts = " | ".join(labels_of(figure))
        assert figure._suptitle is not None or figure.axes[0].get_title(), name
        assert any(ax.get_xlabel() for ax in figure.axes) and any(ax.get_ylabel() for ax in figure.axes), name
        legends = [ax.get_legend() for ax in figure.axes if ax.get_legend()] + list(figure.legends)
        if name != "swaps":  # the heatmap has a colour bar instead
            assert legends, name
        assert texts
    for name, figure in figures.items():
        assert overlapping_legends(figure) == [], name
    decay_axes = figures["decay"].axes
    assert "blur kernel size (pixels)" in decay_axes[2].get_xlabel()
    chance_lines = [line for line in decay_axes[0].get_lines() if line.get_label() == "chance (1/K)"]
    assert chance_lines and chance_lines[0].get_ydata()[0] == 0.25
    # The decay curve of m1 carries its accuracy values, in kernel order.
    m1 = next(line for line in decay_axes[0].get_lines() if line.get_label() == "m1")
    assert list(m1.get_xdata()) == [1.0, 25.0] and list(m1.get_ydata()) == [1.0, 0.5]


def overlapping_legends(figure: Any) -> list[str]:
    """What a legend covers once the figure is drawn: an axis label, a tick label, a title, or a bar."""
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend()] + list(figure.legends)
    covered = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in figure.axes:
            texts = [ax.xaxis.label, ax.yaxis.label, ax.title, *ax.get_xticklabels(), *ax.get_yticklabels()]
            for text in texts:
                if isinstance(text, Text) and text.get_text() and box.overlaps(text.get_window_extent(renderer)):
                    covered.append(f"text {text.get_text()!r}")
            bars = [b for b in ax.patches if isinstance(b, Rectangle) and b.get_height() > 0]
            covered += ["a bar" for b in bars if box.overlaps(b.get_window_extent(renderer))]
    return covered


@pytest.mark.slow
def test_plots_and_tables_are_stable_apart_from_their_creation_time(results: Path) -> None:
    """Two aggregates of the same outputs: every plot and CSV byte for byte, every table's content, results.json
    but for its date; provenance records when each output was made, so those differ only there."""
    config = slice_for()
    aggregate(config, results)
    paths = output_paths(config, results)
    first = {n: p.read_bytes() for n, p in paths.items()}
    tables = {n: pl.read_parquet(p) for n, p in paths.items() if p.suffix == ".parquet"}
    aggregate(config, results)
    second = {n: p.read_bytes() for n, p in paths.items()}
    timed = {"report", "results_json", "csv_provenance"} | set(tables)
    assert [n for n in first if n not in timed and first[n] != second[n]] == []
    for name, table in tables.items():
        again = pl.read_parquet(paths[name])
        if name == "table_provenance":
            table, again = table.drop("created"), again.drop("created")
        assert table.equals(again), name
    one, two = (json.loads(b) for b in (first["results_json"], second["results_json"]))
    assert {**one, "date": None} == {**two, "date": None} and one["results"]


# ------------------------------------------------------------------------------------------------ browser


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.extended
def test_report_in_headless_chromium(results: Path) -> None:
    """The page renders in a real browser: summary, tables and images present, sorting reorders rows, and it
    requests nothing but itself and its own data URIs."""
    if chromium() is None or not _has_playwright():
        pytest.skip("Debian's chromium or playwright is not installed (make test-all runs tests/install-chromium.sh)")
    from playwright.sync_api import sync_playwright

    aggregate(slice_for(), results)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto((results / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert "leans most on the language prior" in page.locator("p.lead").inner_text()
        assert page.locator("#table-headline tbody tr").count() == 2 and not page.locator("ul.summary").is_visible()
        page.set_viewport_size({"width": 1400, "height": 900})  # the headline fits the page without scrolling
        assert page.evaluate(
            "(e => e.scrollWidth <= e.clientWidth)(document.querySelector('#table-headline').parentNode)"
        )
        page.locator("details > summary").first.click()
        assert page.locator("ul.summary li").count() >= 2
        assert "survive every blur level" in page.locator("ul.summary").inner_text()
        for table in (
            "summary",
            "decay",
            "probes",
            "swaps",
            "patches",
            "lens",
            "knockouts",
            "comparisons",
            "provenance",
        ):
            assert page.locator(f"#table-{table} tbody tr").count() > 0, table
        loaded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        assert loaded >= 8  # six plots at least, and the browser's thumbnails
        column = page.locator("#table-decay thead th").all_inner_texts().index("accuracy [low, high]")

        def accuracies() -> list[float]:
            cells = page.locator(f"#table-decay tbody tr td:nth-child({column + 1})").all_inner_texts()
            assert all(re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", c) for c in cells), cells
            return [float(c.split(" ")[0]) for c in cells]

        before = accuracies()
        page.locator("#table-decay thead th").nth(column).click()
        ascending = accuracies()
        page.locator("#table-decay thead th").nth(column).click()
        descending = accuracies()
        # the item browser: search and filters hide what does not match, and say how many are shown
        items = page.locator(".item")
        total = items.count()
        visible = lambda: sum(items.nth(i).is_visible() for i in range(total))  # noqa: E731
        assert total >= 2 and visible() == total
        first_id = page.locator(".item b").first.inner_text()
        page.fill("#item-search", first_id)
        assert visible() == 1 and page.locator("#item-count").inner_text() == "1 shown"
        page.fill("#item-search", "")
        hid_some = False
        for klass in page.locator("#item-class option").all_inner_texts()[1:]:
            page.select_option("#item-class", klass)
            for i in range(total):
                item = items.nth(i)
                has = klass in (item.get_attribute("data-classes") or "").split()
                assert item.is_visible() == has, (klass, i)
                if has:  # the class column shows it, with what it was judged by
                    assert f"{klass} (by " in " ".join(item.locator("td:last-child").all_inner_texts())
            hid_some |= visible() < total
        assert hid_some
        page.select_option("#item-class", "")
        page.select_option("#item-outcome", "wrong")
        assert all("bad" in (item.inner_html()) for item in items.all() if item.is_visible())
        browser.close()
    assert ascending == sorted(before) and descending == sorted(before, reverse=True)
    assert ascending != before
    foreign = [url for url in requests if not url.startswith(("file:", "data:"))]
    assert foreign == []


def _has_playwright() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True


def test_mean_chance_is_the_mean_guess_accuracy() -> None:
    from blindspot.stages.aggregate.run import mean_chance

    items = pl.DataFrame(
        {
            "answer_type": ["multiple_choice", "multiple_choice", "yes_no"],
            "options": [["a", "b", "c", "d"], ["a", "b"], None],
        }
    )
    assert mean_chance(items) == pytest.approx((1 / 4 + 1 / 2 + 1 / 2) / 3)
    open_item = pl.DataFrame({"answer_type": ["multiple_choice", "open"], "options": [["a", "b"], None]})
    assert mean_chance(open_item) is None  # no single chance level when an item has an open answer


def test_browser_shows_the_clean_and_most_blurred_image_and_every_answer(results: Path) -> None:
    from blindspot.stages.aggregate.browser import browser, choose_items, thumbnail
    from blindspot.stages.aggregate.html import png_data_uri
    from blindspot.store.render import RenderStore

    classes = pl.concat([pl.read_parquet(p) for p in sorted((results / "decay").glob("*/*.items.parquet"))])
    # m1's classes (the first model by name): language prior 0, coarse 1-2, fine 3-5; taken in turn by class name.
    ids = sorted(pl.read_parquet(results / "staged" / BENCH / "items.parquet")["item_id"])
    assert choose_items(classes, 4) == [ids[1], ids[3], ids[0], ids[2]]
    items = pl.read_parquet(results / "staged" / BENCH / "items.parquet")
    predictions = pl.concat([pl.read_parquet(p) for p in sorted((results / "predictions").glob("*/*.parquet"))])
    store_path = results / "render" / f"{BENCH}.zarr"
    page = browser(BENCH, items, predictions, classes, store_path, "blur", 4, 64, 1.0)
    store = RenderStore(store_path)
    key = items.filter(pl.col("item_id") == ids[3])["image_keys"][0][0]
    assert png_data_uri(thumbnail(store.image(key, "blur", 0), 64)) in page
    assert png_data_uri(thumbnail(store.image(key, "blur", 1), 64)) in page
    assert page.count('<div class="item" ') == 4
    # m1 answers item 3 right on the clean image, wrong at kernel 25, blank and noise; m2 right under all four.
    block = page.split(f"<b>{ids[3]}</b>")[1].split('<div class="item" ')[0]
    gold = items.filter(pl.col("item_id") == ids[3])["answer"][0]
    m1 = block.split("<td class=text>m1</td>")[1].split("</tr>")[0]
    assert m1.count('class="ok"') == 1 and m1.count('class="bad"') == 3
    assert m1.endswith("<td class=text>fine_visual (by identity)</td>")
    m2 = block.split("<td class=text>m2</td>")[1].split("</tr>")[0]
    assert m2.count(f">{gold}</td>") == 4


def test_swap_sentences_report_the_largest_move_in_either_direction() -> None:
    """A spec that lowers follow-image by more than another raises it is the one reported, as a move down; with
    conditions listed in any order, the sentence names the one it read."""
    from blindspot.stages.aggregate.sentences import swap_sentences

    def rows(level: int, values: dict[str, float]) -> list[dict[str, Any]]:
        return [{"pair": "p", "benchmark": "b", "family": "blur", "level": level, "spec": spec, "base": "m1",
                 "donor": "m2", "follow_image": v, "follow_image_ci_low": v - 0.05, "follow_image_ci_high": v + 0.05,
                 "accuracy": 0.5} for spec, v in values.items()]  # fmt: skip

    down = {"base": 0.6, "donor": 0.1, "layer_1": 0.7, "layer_2": 0.2}
    (sentence,) = swap_sentences(pl.DataFrame(rows(0, down)))
    assert "swapping layer_2 from m2 into m1 (p) moves follow-image from 60.0% to 20.0% [15.0, 25.0]" in sentence
    assert sentence.endswith("the whole donor reaches 10.0% (on the clean image).")
    up = {"base": 0.2, "donor": 0.9, "layer_1": 0.3, "layer_2": 0.8}
    (sentence,) = swap_sentences(pl.DataFrame(rows(0, up)))
    assert "moves follow-image from 20.0% to 80.0%" in sentence


@pytest.mark.slow
def test_results_json_and_csv_tables_for_other_tools(results: Path) -> None:
    """results.json beside the report: every headline metric with its interval per benchmark and model, and what
    made them; every table also as CSV (spreadsheets, snakemake --report)."""
    config = slice_for()
    aggregate(config, results)
    paths = output_paths(config, results)
    data = json.loads(paths["results_json"].read_text())
    summary = pl.read_parquet(paths["table_summary"])
    row = summary.row(0, named=True)
    entry = data["results"][row["benchmark"]][row["model"]]
    assert entry["c_rate"] == {"value": row["c_rate"], "ci_low": row["c_rate_ci_low"], "ci_high": row["c_rate_ci_high"]}
    assert set(entry) >= {"accuracy_clean", "c_rate_margin", "c_chance", "c_chance_empirical", "mg", "ml"}
    assert data["versions"]["blindspot"] and data["date"] and "config_hash" in data and "git_commit" in data
    csv = pl.read_csv(paths["csv_summary"])
    assert csv.height == summary.height and csv["c_rate"].to_list() == summary["c_rate"].to_list()
    assert pl.read_csv(paths["csv_provenance"])["created"].drop_nulls().len() > 0


def swap_spec(spec: str, layers: list[int], value: float, half: float = 0.1, units: list[str] | None = None) -> dict:
    return {"pair": "p", "benchmark": "b", "family": "blur", "level": 0, "param": 1.0, "spec": spec, "base": "m1",
            "donor": "m2", "layers": layers, "units": units or [], "follow_image": value,
            "follow_image_ci_low": value - half, "follow_image_ci_high": value + half, "accuracy": 0.5}  # fmt: skip


def test_the_swap_sentence_names_a_single_layer_over_a_wider_window_that_ties_with_it() -> None:
    """first_2 (layers 0-1) moves follow-image to 73%, layer_0 alone to 70%, inside first_2's interval: the
    sentence names layer_0 and says the wider spec does no better. Outside the interval, the wider one is named."""
    from blindspot.stages.aggregate.sentences import swap_findings

    def finding(single: float) -> str:
        rows = [swap_spec("base", [], 0.0, 0.0), swap_spec("first_2", [0, 1], 0.73, 0.13),
                swap_spec("layer_0", [0], single), swap_spec("layer_1", [1], 0.0, 0.0),
                swap_spec("donor", [0, 1, 2, 3], 1.0, 0.0, ["all"])]  # fmt: skip
        (found,) = swap_findings(pl.DataFrame(rows))
        return found.text

    tied = finding(0.70)
    assert "swapping layer_0 from m2 into m1 (p) moves follow-image from 0.0% to 70.0% [60.0, 80.0]" in tied
    assert "the wider first_2 (73.0%) does no better within the interval" in tied
    apart = finding(0.40)
    assert "swapping first_2 from m2 into m1" in apart and "does no better" not in apart


def summary_rows(values: dict[tuple[str, str], tuple[float, float]]) -> pl.DataFrame:
    """A summary table: (model, benchmark) -> (language-prior share, MG), every other column null."""
    rows = []
    for (model, bench), (prior, mg) in values.items():
        row: dict[str, Any] = dict.fromkeys(SUMMARY_SCHEMA.names)
        row |= {"model": model, "benchmark": bench, "n_items": 100, "n_vision_indispensable": 50}
        for name, value in (("share_language_prior", prior), ("mg", mg), ("share_vision_indispensable", 0.5)):
            row |= {name: value, f"{name}_ci_low": value - 0.03, f"{name}_ci_high": value + 0.03}
        rows.append(row)
    return pl.DataFrame(rows, schema=pl.Schema(SUMMARY_SCHEMA))


def test_the_headline_says_at_most_three_things_and_names_the_prior_follower() -> None:
    """Three models on two benchmarks, two swap pairs and patching: the headline is at most three sentences, the
    first names the model with the largest language-prior share (and ties at the bottom), the last the strongest
    swap; the per-row sentences are not in it."""
    from blindspot.stages.aggregate.headline import headline_sentences

    summary = summary_rows(
        {
            ("a", "x"): (0.35, 0.38),
            ("b", "x"): (0.15, 0.52),
            ("c", "x"): (0.15, 0.57),
            ("a", "y"): (0.30, 0.20),
            ("b", "y"): (0.28, 0.21),
            ("c", "y"): (0.29, 0.22),
        }
    )
    swaps = pl.DataFrame(
        [swap_spec("base", [], 0.0, 0.0), swap_spec("layer_2", [2], 0.99, 0.03), swap_spec("layer_1", [1], 0.1)]
        + [r | {"pair": "q"} for r in (swap_spec("base", [], 0.0, 0.0), swap_spec("layer_0", [0], 0.4))]
    )
    sentences = headline_sentences(summary, swaps, pl.DataFrame(patch_rows()))
    assert len(sentences) == 3
    prior, mg, mechanism = sentences
    assert prior.startswith("On x, a leans most on the language prior (language-prior share 35.0% [32.0, 38.0])")
    assert "b and c least (15.0% [12.0, 18.0])" in prior and "overlap" not in prior
    assert mg.startswith("On x, c gains most from the image (MG 57.0%") and "a least (38.0%" in mg
    assert "swapping layer_2 from m2 into m1 (p) moves follow-image from 0.0% to 99.0%" in mechanism
    close = summary_rows({("a", "x"): (0.30, 0.5), ("b", "x"): (0.28, 0.5)})
    (only,) = headline_sentences(close, swaps.clear(), pl.DataFrame(patch_rows()).clear())[:1]
    assert "their intervals overlap" in only


@pytest.mark.slow
def test_the_report_opens_with_one_compact_headline_table(results: Path) -> None:
    """The summary section: at most three sentences, then one table with every headline figure and its interval,
    and the note on C by identity; the per-row sentences and the full summary are folded below."""
    aggregate(slice_for(), results)
    page = (results / "report.html").read_text()
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    lead = re.search(r'<p class="lead">(.*?)</p>', summary)
    assert lead is not None and 1 <= len(re.findall(r"\.(?= |$)", lead.group(1))) <= 3  # sentences end ". "
    table = summary.split('id="table-headline"')[1].split("</table>")[0]
    headers = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table)
    assert headers[:4] == ["model", "benchmark", "items", "clean accuracy"]
    assert headers[4:] == ["C by margin", "C by identity \u2020", "chance (1/K)^L", "chance (own answers)", "MG",
                           "language prior", "vision-indispensable"]  # fmt: skip
    m1 = table.split(">m1</td>")[1].split("</tr>")[0]
    assert '<td data-v="0.5">50.0%<span class="ci">' in m1  # C by identity 3/6, its interval beneath
    assert '<td data-v="0.8333333333333334">83.3%<span class="ci">' in m1  # 5 of 6 vision-indispensable
    assert "counts coarse-visual answers" in summary and "language-prior share" in summary
    details = summary.split("<details>")[1]
    assert "On small, m1 answers 6 items with clean accuracy" in details and 'id="table-summary"' in details


def test_chance_levels_show_across_each_bar_even_at_zero() -> None:
    """Both chance levels are lines across their bar, drawn above it with a white edge, and the axis leaves room
    below zero so a chance near 0 is not lost in the axis line."""
    summary = summary_rows({("a", "x"): (0.3, 0.5), ("b", "x"): (0.1, 0.5)}).with_columns(
        c_rate=pl.lit(0.8), c_rate_ci_low=pl.lit(0.75), c_rate_ci_high=pl.lit(0.85), c_chance=pl.lit(0.003),
        c_chance_empirical=pl.lit(0.08),
    )  # fmt: skip
    figure = plots.c_rates(summary)
    ax = figure.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    chance = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_ydata()[0] in (0.003, 0.08)]
    assert len(bars) == 2 and len(chance) == 4
    for line in chance:
        assert line.get_zorder() > max(b.get_zorder() for b in bars) and line.get_path_effects()
        x0, x1 = line.get_xdata()
        assert x1 - x0 >= 0.6 * bars[0].get_width()
    assert ax.get_ylim()[0] < 0


def test_swap_heatmap_panels_and_labels_stay_apart_and_values_read_on_dark_cells() -> None:
    """Two pairs with long spec names: no text of one panel (spec names, axis labels, title) lies on another panel
    or its texts, and a value on a dark cell is white."""
    names = ["base", "vision_tower_and_projector", "layers_0_to_11", "donor"]
    rows = [swap_spec(n, [0], v, 0.05) for n, v in zip(names, (0.0, 0.95, 0.1, 1.0), strict=True)]
    rows += [r | {"pair": "q"} for r in rows]
    figure = plots.swap_heatmap(pl.DataFrame(rows).with_columns(pl.col("follow_image").cast(pl.Float64)))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.axes

    def texts(ax: Any) -> list[Any]:
        found = [ax.xaxis.label, ax.yaxis.label, ax.title, *ax.get_xticklabels(), *ax.get_yticklabels()]
        return [t for t in found if t.get_text()]

    for a in axes:
        for b in axes:
            if a is b:
                continue
            body = b.get_window_extent(renderer)
            for text in texts(a):
                box = text.get_window_extent(renderer)
                assert not box.overlaps(body), (text.get_text(), "on another panel")
                assert not any(box.overlaps(t.get_window_extent(renderer)) for t in texts(b)), text.get_text()
    cells = {t.get_text(): t.get_color() for t in axes[0].texts}
    assert cells["+0.95"] == "white" and cells["+0.10"] == "black"


def test_probe_legends_name_kernels_and_benchmarks_get_their_own_panels() -> None:
    probes = pl.DataFrame(
        [
            r | {"level": level, "benchmark": bench}
            for bench in ("x", "y")
            for level in ("blur/0", "blur/7")
            for r in probe_rows("m1")
        ],
        schema=pl.Schema(PROBES_SCHEMA),
    )
    names = {(b, "blur/0"): "clean" for b in ("x", "y")} | {(b, "blur/7"): "blur k=61" for b in ("x", "y")}
    figure = plots.probe_curves(probes, "m1", names)
    labels = figure.legends[0].get_texts()
    assert [t.get_text() for t in labels] == ["gold (clean)", "gold (blur k=61)"]
    titles = [ax.get_title() for ax in figure.axes]
    assert any(t.startswith("x \u00b7 last_token") for t in titles) and any(t.startswith("y \u00b7") for t in titles)
    for ax in figure.axes:  # one benchmark per panel: every line runs over the layers once, in order
        for line in ax.get_lines():
            xs = list(line.get_xdata())
            assert xs == sorted(xs) and len(xs) == len(set(xs)), ax.get_title()


def test_browser_shows_every_family_and_marks_right_answers_that_are_not_confident() -> None:
    """Every condition an item ran under is a column (blank, noise, no image, pixelate beside the blur ladder), and
    a right answer whose option leads by less than the margin threshold is marked apart from a confident one."""
    from blindspot.stages.aggregate.browser import _answers_table

    conditions = [
        ("blur", 0, 1.0, -0.1, -3.0),
        ("blur", 1, 25.0, -0.5, -1.0),
        ("blank", 1, 0.0, -3.0, -0.1),
        ("noise", 1, 0.0, -0.2, -2.0),
        ("none", 1, 0.0, -2.0, -0.2),
        ("pixelate", 2, 8.0, -0.1, -4.0),
    ]
    rows = []
    for family, level, param, lp_a, lp_b in conditions:
        parsed = "A" if lp_a > lp_b else "B"
        outcome = "correct" if parsed == "A" else "wrong"
        rows.append(
            {
                "model": "m",
                "item_id": "i",
                "family": family,
                "level": level,
                "param": param,
                "parsed": parsed,
                "outcome": outcome,
                "raw_text": parsed,
                "option_labels": ["A", "B"],
                "option_logprobs": [lp_a, lp_b],
                "first_token_is_label": True,
            }
        )
    classes = pl.DataFrame(
        [{"model": "m", "item_id": "i", "class": "coarse_visual", "judged_by": "margin", "class_identity": None}]
    )
    page = _answers_table(pl.DataFrame(rows), classes, "i", "blur", threshold=1.0)
    headers = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", page)
    assert headers == ["model", "clean", "k=25", "blank", "noise", "no image", "px 8", "class"]
    cells = re.findall(r'<td class="(\w+)" title="[^"]*">([^<]*)</td>', page)
    # clean leads by 2.9 nats (confident), blur k=25 by 0.5 (right, unsure), noise by 1.8, pixelate by 3.9.
    assert cells == [("ok", "A"), ("unsure", "A?"), ("bad", "B"), ("ok", "A"), ("bad", "B"), ("ok", "A")]
    assert "leads the next option by 0.50 nats" in page
