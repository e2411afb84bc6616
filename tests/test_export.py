"""The benchmark that needs the image (stages/aggregate/needs_image.py, `blindspot export`): which items are solved
blind (right with evidence at a blank, noise or no-image condition), the export's files, and the export read back
through the generic adapter with the same items and golds."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from blindspot.benchmarks.generic import GenericBenchmark
from blindspot.stages.aggregate.needs_image import export_benchmark, gold_margin, judge
from blindspot.stages.staging import stage_benchmark, staged_paths

FAMILIES = ["blank", "noise", "none"]


def _row(model: str, item: str, family: str, right: bool, margin: float | None, gold: str = "A") -> dict:
    labels = ["A", "B"]
    lps = None if margin is None else ([0.0, -margin] if right else [-margin, 0.0])
    return {"model": model, "item_id": item, "family": family, "outcome": "correct" if right else "wrong",
            "gold": gold, "option_labels": labels if margin is not None else None, "option_logprobs": lps}  # fmt: skip


def test_an_item_is_solved_blind_only_when_answered_right_with_evidence_without_the_image() -> None:
    rows = [
        _row("m1", "confident", "none", True, 3.0),  # right with 3 nats of evidence and no image: solved blind
        _row("m1", "coinflip", "blank", True, 0.2),  # right, but a coin flip: not knowledge
        _row("m1", "open", "noise", True, None),  # right, options not scored: counts
        _row("m1", "clean_only", "blur", True, 5.0),  # right only on the image: not a blind condition
        _row("m2", "coinflip", "none", True, 0.5),
        _row("m2", "confident", "none", False, 3.0),
    ]
    judged = judge(pl.DataFrame(rows), FAMILIES, threshold=1.0)
    solved = dict(judged.items.select("item_id", "solved_blind").iter_rows())
    assert solved == {"confident": True, "coinflip": False, "open": True, "clean_only": False}
    counts = dict(judged.items.select("item_id", "n_models_blind").iter_rows())
    assert counts["coinflip"] == 1 and counts["confident"] == 1  # right with no image at all, by identity
    assert judged.items.filter(pl.col("item_id") == "confident")["blind_models"].to_list() == [["m1"]]
    assert gold_margin(["A", "B", "C"], [-0.1, -2.0, -3.0], "A") == pytest.approx(1.9)
    assert gold_margin(["A", "B"], [-0.1, -2.0], "Z") is None


def test_the_export_reads_back_through_the_generic_adapter(small_benchmark: dict[str, Path], tmp_path: Path) -> None:
    items = pl.read_parquet(small_benchmark["items"])
    ids = items["item_id"].to_list()
    blind = set(ids[:2])  # two items a model answers right, confidently, with no image
    rows = [_row("m1", i, "none", i in blind, 3.0, gold=g) for i, g in zip(ids, items["answer"], strict=True)]
    rows += [_row("m2", i, "blank", False, 3.0, gold=g) for i, g in zip(ids, items["answer"], strict=True)]
    judged = judge(pl.DataFrame(rows), FAMILIES, threshold=1.0)
    out = tmp_path / "export"
    counts = export_benchmark("small", judged, small_benchmark["items"], small_benchmark["items"].parent /
                              "images.parquet", out, 1.0)  # fmt: skip
    assert counts["items_exported"] == len(ids) - 2 and counts["excluded_by_model"] == {"m1": 2, "m2": 0}
    card = (out / "README.md").read_text()
    assert f"the {len(ids) - 2} of {len(ids)} items" in card and "m1, m2" in card and "1.0 nats" in card
    assert "task: small_needs_image" in (out / "small_needs_image.yaml").read_text()
    assert json.loads((out / "datasheet.json").read_text())["conditions"] == FAMILIES
    compile((out / "utils.py").read_text(), "utils.py", "exec")  # the lmms-eval helpers are valid Python

    config = GenericBenchmark(path=str(out / "data"), answer_type="multiple_choice",
                              columns={"id": "id", "options": "options", "image": "image",
                                       "metadata": ["n_models_blind"]})  # fmt: skip
    stage_benchmark("again", config, staged_paths(tmp_path / "again"))
    again = pl.read_parquet(tmp_path / "again" / "items.parquet")
    kept = items.filter(~pl.col("item_id").is_in(list(blind)))
    assert again["item_id"].to_list() == kept["item_id"].to_list()
    assert again["answer"].to_list() == kept["answer"].to_list()
    assert again["question"].to_list() == kept["question"].to_list()
    assert again["options"].to_list() == kept["options"].to_list()
    assert again["image_keys"].to_list() == kept["image_keys"].to_list()  # the same image bytes
