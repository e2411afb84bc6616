"""The generic adapter over every input path, canonical items, and the rejects table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import generic_entry, stage_entry

from blindspot.benchmarks.sources import SourceError
from blindspot.fixtures import write_shapes_benchmark
from blindspot.images import decode_rgb, encode_png, sha256_hex
from blindspot.stages.staging import StageError
from blindspot.store.tables import read_provenance

EXPECTED_REJECTS = {"bad_image", "missing_answer", "missing_question"}


def stage(tmp_path: Path, entry: dict, name: str = "b") -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    out = tmp_path / "staged" / name
    stage_entry(name, {"max_reject_share": 1.0, **entry}, out)  # rows bad by design; the share has its own tests
    return (
        pl.read_parquet(out / "items.parquet"),
        pl.read_parquet(out / "rejects.parquet"),
        pl.read_parquet(out / "images.parquet"),
    )


@pytest.mark.parametrize(
    ("fmt", "image_mode"),
    [
        ("parquet", "struct"),
        ("parquet", "bytes"),
        ("parquet", "base64"),
        ("parquet", "path"),
        ("jsonl", "base64"),
        ("jsonl", "path"),
    ],
)
def test_every_input_path_stages_the_same_items(tmp_path: Path, fmt: str, image_mode: str) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=10, seed=3, fmt=fmt, image_mode=image_mode)
    entry = generic_entry(path, image_root=str(tmp_path / "src" / "images") if image_mode == "path" else None)
    items, rejects, images = stage(tmp_path, entry)

    assert items.height == 10
    assert set(rejects["reason"]) == EXPECTED_REJECTS and rejects.height == 3
    assert set(rejects["source_index"]) == {10, 11, 12}
    assert items["item_id"].to_list() == [f"q{i:05d}" for i in range(10)]
    assert set(items["answer"]) <= {"A", "B", "C", "D"}
    assert items["options"].list.len().to_list() == [4] * 10
    # Images are keyed by the sha256 of their source bytes and decode to the recorded size.
    for row in images.iter_rows(named=True):
        assert sha256_hex(row["data"]) == row["image_sha256"]
        assert decode_rgb(row["data"]).shape[:2] == (row["height"], row["width"])
    assert items["image_keys"].list.len().to_list() == [1] * 10
    assert set(items["image_keys"].explode()) == set(images["image_sha256"])
    assert (items["benchmark"] == "b").all() and (rejects["benchmark"] == "b").all()
    # Every source row is accounted for exactly once.
    assert sorted(items["source_index"].to_list() + rejects["source_index"].to_list()) == list(range(13))


def test_same_items_whatever_the_encoding(tmp_path: Path) -> None:
    """The canonical table does not depend on how the source stored its images."""
    tables = []
    for mode in ("struct", "path"):
        path = write_shapes_benchmark(tmp_path / mode, n_items=6, seed=5, image_mode=mode)
        entry = generic_entry(path, image_root=str(tmp_path / mode / "images"))
        tables.append(stage(tmp_path / mode, entry)[0].drop("metadata"))
    assert tables[0].equals(tables[1])


def test_gold_text_answer_becomes_the_option_letter(tmp_path: Path) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=8, seed=2, bad_rows=False)
    source = pq.read_table(path).to_pylist()
    items, _, _ = stage(tmp_path, generic_entry(path))
    for row, item in zip(source, items.iter_rows(named=True), strict=True):
        assert item["options"][ord(item["answer"]) - ord("A")] == row["answer"]
        assert json.loads(item["metadata"]) == {"category": "colour"}


def test_yes_no_questions_share_images(tmp_path: Path) -> None:
    path = write_shapes_benchmark(tmp_path / "src", n_items=8, kind="shape_yes_no", bad_rows=False)
    items, rejects, images = stage(
        tmp_path, {**generic_entry(path), "answer_type": "yes_no", "columns": {"id": "question_id"}}
    )
    assert rejects.height == 0
    assert items["answer"].to_list() == ["yes", "no"] * 4
    assert images.height == 4  # two questions per image, each image stored once


def write_table(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture
def png() -> bytes:
    return encode_png(np.full((20, 30, 3), 90, dtype=np.uint8))


def test_options_in_separate_columns_and_index_answers(tmp_path: Path, png: bytes) -> None:
    rows = [
        {"index": 0, "question": "q?", "A": "cat", "B": "dog", "C": None, "D": None, "answer": "B", "image": png},
        {"index": 1, "question": "q?", "A": "x", "B": "y", "C": "z", "D": "", "answer": "C", "image": png},
    ]
    path = write_table(tmp_path / "mmbench.parquet", rows)
    entry = generic_entry(path, columns={"id": "index", "options": ["A", "B", "C", "D"]})
    items, rejects, _ = stage(tmp_path, entry)
    assert rejects.height == 0
    assert items["options"].to_list() == [["cat", "dog"], ["x", "y", "z"]]
    assert items["answer"].to_list() == ["B", "C"]

    rows = [{"id": i, "question": "q", "options": ["a", "b", "c"], "answer": i, "image": png} for i in range(3)]
    path = write_table(tmp_path / "ai2d.parquet", rows)
    items, _, _ = stage(tmp_path, generic_entry(path, columns={"id": "id", "options": "options"}), name="ai2d")
    assert items["answer"].to_list() == ["A", "B", "C"]  # an integer column is a 0-based index


def test_stringified_options_and_ambiguous_answers(tmp_path: Path, png: bytes) -> None:
    rows = [
        {"id": "1", "question": "q", "options": "['red', 'blue']", "answer": "blue", "image": png},
        {"id": "2", "question": "q", "options": '["1", "2", "3"]', "answer": "2", "image": png},  # text B, index C
        {"id": "3", "question": "q", "options": "not a list", "answer": "A", "image": png},
        {"id": "4", "question": "q", "options": "['a', 'b']", "answer": "E", "image": png},
    ]
    path = write_table(tmp_path / "mmmu.parquet", rows)
    items, rejects, _ = stage(tmp_path, generic_entry(path, columns={"id": "id", "options": "options"}))
    assert items["answer"].to_list() == ["B"]
    assert dict(zip(rejects["item_id"], rejects["reason"], strict=True)) == {
        "2": "ambiguous_answer",
        "3": "bad_options",
        "4": "bad_answer",
    }
    assert "set answer_format" in rejects.filter(pl.col("item_id") == "2")["message"][0]
    entry = generic_entry(path, columns={"id": "id", "options": "options"}, answer_format="text")
    items, _, _ = stage(tmp_path, entry, name="as_text")
    assert items["answer"].to_list() == ["B", "B"]


def test_open_answers_keep_every_reference(tmp_path: Path, png: bytes) -> None:
    rows = [
        {"question_id": 7, "question": "what?", "answers": ["stop", "stop", "halt", "stop sign"], "image": png},
        {"question_id": 8, "question": "what?", "answers": [], "image": png},
    ]
    path = write_table(tmp_path / "textvqa.parquet", rows)
    entry = {
        "adapter": "generic",
        "path": str(path),
        "answer_type": "open",
        "columns": {"id": "question_id", "answer": "answers"},
    }
    items, rejects, _ = stage(tmp_path, entry)
    assert items["answer"].to_list() == ["stop"]
    assert items["answers"].to_list() == [["stop", "stop", "halt", "stop sign"]]
    assert items["item_id"].to_list() == ["7"]
    assert rejects["reason"].to_list() == ["missing_answer"]


def test_yes_no_and_count_normalisation(tmp_path: Path, png: bytes) -> None:
    rows = [{"q": f"is it {i}?", "a": a, "img": png} for i, a in enumerate(["1", "0", "Yes", "no.", "maybe"])]
    path = write_table(tmp_path / "hallusion.parquet", rows)
    cols = {"question": "q", "answer": "a", "image": "img"}
    items, rejects, _ = stage(tmp_path, {"path": str(path), "answer_type": "yes_no", "columns": cols})
    assert items["answer"].to_list() == ["yes", "no", "yes", "no"]
    assert rejects["reason"].to_list() == ["bad_answer"]
    assert items["item_id"].n_unique() == 4  # content ids where the source has none
    rows = [{"q": f"how many {i}?", "a": a, "img": png} for i, a in enumerate(["3", "three", "2.50", "1,000", "lots"])]
    path = write_table(tmp_path / "count.parquet", rows)
    items, rejects, _ = stage(tmp_path, {"path": str(path), "answer_type": "count", "columns": cols}, name="c")
    assert items["answer"].to_list() == ["3", "3", "2.5", "1000"]
    assert rejects["reason"].to_list() == ["bad_answer"]


def test_content_ids_are_stable_and_deduplicate(tmp_path: Path, png: bytes) -> None:
    rows = [{"question": "same?", "answer": "yes", "image": png}] * 2 + [
        {"question": "other?", "answer": "no", "image": png}
    ]
    path = write_table(tmp_path / "noid.parquet", rows)
    entry = {"path": str(path), "answer_type": "yes_no"}
    first, rejects, _ = stage(tmp_path, entry)
    again, _, _ = stage(tmp_path, entry, name="again")
    assert first["item_id"].to_list() == again["item_id"].to_list()
    assert first.height == 2 and rejects["reason"].to_list() == ["duplicate_id"]


def test_missing_images_and_questions_are_rejected_not_dropped(tmp_path: Path, png: bytes) -> None:
    rows = [
        {"id": "ok", "question": "q", "answer": "yes", "image": "present.png"},
        {"id": "gone", "question": "q", "answer": "yes", "image": "absent.png"},
        {"id": "none", "question": "q", "answer": "yes", "image": None},
        {"id": "noq", "question": "  ", "answer": "yes", "image": "present.png"},
        {"id": "b64", "question": "q", "answer": "yes", "image": "bm90IGFuIGltYWdl"},  # base64 of "not an image"
    ]
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "present.png").write_bytes(png)
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken json\n")
    entry = {"path": str(path), "image_root": str(tmp_path / "imgs"), "answer_type": "yes_no", "columns": {"id": "id"}}
    items, rejects, _ = stage(tmp_path, entry)
    assert items["item_id"].to_list() == ["ok"]
    reasons = dict(zip(rejects["source_index"], rejects["reason"], strict=True))
    assert reasons == {1: "bad_image", 2: "missing_image", 3: "missing_question", 4: "bad_image", 5: "malformed_row"}
    assert "image file not found" in rejects.filter(pl.col("item_id") == "gone")["message"][0]


def test_a_wrong_column_mapping_is_a_clear_error(shapes_parquet: Path, tmp_path: Path) -> None:
    entry = generic_entry(shapes_parquet, columns={"id": "question_id", "question": "prompt"})
    with pytest.raises(SourceError, match=r"^benchmark.columns.question: column 'prompt' is not in '.*' \(columns: "):
        stage(tmp_path, entry)


def test_everything_rejected_fails_the_stage(tmp_path: Path, png: bytes) -> None:
    path = write_table(tmp_path / "t.parquet", [{"question": "q", "answer": None, "image": png}])
    with pytest.raises(StageError, match=r"no item staged \(missing_answer: 1\)"):
        stage(tmp_path, {"path": str(path), "answer_type": "yes_no"})
    assert not (tmp_path / "staged" / "b" / "items.parquet").exists()


def test_folder_of_shards_and_limit(tmp_path: Path, png: bytes) -> None:
    shards = tmp_path / "data"
    shards.mkdir()
    for s in range(2):
        write_table(
            shards / f"test-0000{s}-of-00002.parquet",
            [{"question": f"q{s}{i}", "answer": "no", "image": png} for i in range(3)],
        )
    items, _, _ = stage(tmp_path, {"path": str(shards), "answer_type": "yes_no"})
    assert items["question"].to_list() == ["q00", "q01", "q02", "q10", "q11", "q12"]
    items, _, _ = stage(tmp_path, {"path": str(shards), "answer_type": "yes_no", "limit": 4}, name="lim")
    assert items.height == 4


def test_outputs_carry_provenance(shapes_parquet: Path, tmp_path: Path) -> None:
    entry = generic_entry(shapes_parquet)
    stage(tmp_path, entry)
    record = read_provenance(tmp_path / "staged" / "b" / "items.parquet")
    assert record["stage"] == "stage" and record["benchmark"] == "b" and record["adapter"] == "generic"
    assert len(record["config_hash"]) == 16 and record["config"]["path"] == str(shapes_parquet)
    assert "numpy" in record["versions"]


# ------------------------------------------------------------------------------------------------ as published


def test_mixed_answer_types_from_a_column_or_derived_by_rule(tmp_path: Path, png: bytes) -> None:
    """VLMBias mixes counts and yes/no in one file: a column can name each item's type, or `auto` derives it."""
    rows = [
        {"id": "a", "prompt": "How many legs? Answer in {}.", "gt": "5", "topic": "counting", "image": png},
        {"id": "b", "prompt": "Same length? Answer {Yes} or {No}.", "gt": "Yes", "topic": "yes/no", "image": png},
        {"id": "c", "prompt": "Which?", "gt": "5", "topic": "essay", "image": png},
    ]
    path = write_table(tmp_path / "vlmbias.parquet", rows)
    columns = {"id": "id", "question": "prompt", "answer": "gt", "answer_type": "topic"}
    entry = {"path": str(path), "answer_type": "column", "columns": columns,
             "answer_type_values": {"counting": "count", "yes/no": "yes_no"}}  # fmt: skip
    items, rejects, _ = stage(tmp_path, entry)
    assert items.select("item_id", "answer_type", "answer").rows() == [("a", "count", "5"), ("b", "yes_no", "yes")]
    assert rejects.select("item_id", "reason").rows() == [("c", "bad_answer_type")]
    auto = {
        "path": str(path),
        "answer_type": "auto",
        "columns": {k: v for k, v in columns.items() if k != "answer_type"},
    }
    items, rejects, _ = stage(tmp_path, auto, name="auto")
    assert items["answer_type"].to_list() == ["count", "yes_no", "count"] and rejects.height == 0


def test_answer_type_column_needs_its_mapping(tmp_path: Path) -> None:
    from blindspot.benchmarks.generic import GenericBenchmark

    with pytest.raises(ValueError, match=r"answer_type: column and columns\.answer_type go together"):
        GenericBenchmark.model_validate({"path": "x.parquet", "answer_type": "column"})


@pytest.mark.parametrize(
    ("question", "head", "options"),
    [
        (  # MMStar
            "Which option describes the scene?\nOptions: A: The suitcase is on the book., B: The cat is on the "
            "suitcase., C: The book is under the cat., D: The cat is beside the book.",
            "Which option describes the scene?",
            [
                "The suitcase is on the book.",
                "The cat is on the suitcase.",
                "The book is under the cat.",
                "The cat is beside the book.",
            ],
        ),
        (  # V*
            "What is the color of the woman's glove?\n(A) black\n(B) white\n(C) red\n(D) blue\nAnswer with the "
            "option's letter from the given choices directly.",
            "What is the color of the woman's glove?",
            ["black", "white", "red", "blue"],
        ),
        ("Pick one. Choices: A. vitamin C; B. iron", "Pick one.", ["vitamin C", "iron"]),
    ],
)
def test_options_inside_the_question_are_extracted(question: str, head: str, options: list[str]) -> None:
    from blindspot.benchmarks.gold import options_from_question

    assert options_from_question(question) == (head, options)


def test_options_in_question_stage_through_config_alone(tmp_path: Path, png: bytes) -> None:
    rows = [
        {"index": 1, "question": "What colour?\nOptions: A: red, B: blue, C: green", "answer": "B", "image": png},
        {"index": 2, "question": "What colour is it, without options?", "answer": "A", "image": png},
    ]
    path = write_table(tmp_path / "mmstar.parquet", rows)
    entry = {
        "path": str(path),
        "answer_type": "multiple_choice",
        "options_in_question": True,
        "columns": {"id": "index"},
    }
    items, rejects, _ = stage(tmp_path, entry)
    assert items.select("question", "options", "answer").rows() == [("What colour?", ["red", "blue", "green"], "B")]
    assert rejects.select("item_id", "reason").rows() == [("2", "bad_options")]


def test_a_question_without_options_is_free_form_under_auto(tmp_path: Path, png: bytes) -> None:
    """RealWorldQA mixes lettered questions and free-form ones in one column: under answer_type auto the latter
    stage as open (or yes/no, count) items with their question untouched, not as bad_options rejects."""
    rows = [
        {"index": 1, "question": "Which way?\nA. left\nB. right\nPlease answer directly with only the letter.",
         "answer": "B", "image": png},
        {"index": 2, "question": "How many cars are there? Please answer directly with a single number.",
         "answer": "3", "image": png},
        {"index": 3, "question": "Is the light green? Please answer yes or no.", "answer": "No", "image": png},
        {"index": 4, "question": "What does the sign say?", "answer": "STOP", "image": png},
    ]  # fmt: skip
    path = write_table(tmp_path / "realworldqa.parquet", rows)
    entry = {"path": str(path), "answer_type": "auto", "options_in_question": True, "columns": {"id": "index"}}
    items, rejects, _ = stage(tmp_path, entry)
    assert rejects.height == 0
    assert items.select("item_id", "answer_type", "options", "answer").rows() == [
        ("1", "multiple_choice", ["left", "right"], "B"),
        ("2", "count", None, "3"),
        ("3", "yes_no", None, "no"),
        ("4", "open", None, "STOP"),
    ]
    assert items["question"][1] == rows[1]["question"]


def test_vqav2_reference_records_are_the_ten_answers(tmp_path: Path, png: bytes) -> None:
    records = [
        {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(["2"] * 7 + ["3"] * 3)
    ]
    path = write_table(tmp_path / "vqav2.parquet", [{"question": "how many?", "answers": records, "image": png}])
    entry = {"path": str(path), "answer_type": "open", "columns": {"answer": "answers"}}
    items, _, _ = stage(tmp_path, entry)
    assert items["answers"].to_list() == [["2"] * 7 + ["3"] * 3] and items["answer"].to_list() == ["2"]


def test_a_reference_layout_not_understood_is_a_one_line_error(tmp_path: Path, png: bytes) -> None:
    from blindspot.benchmarks.gold import ReferenceLayoutError

    records = [{"text": "2", "id": 1}, {"text": "3", "id": 2}]
    path = write_table(tmp_path / "odd.parquet", [{"question": "how many?", "answers": records, "image": png}])
    entry = {"path": str(path), "answer_type": "open", "columns": {"answer": "answers"}}
    with pytest.raises(ReferenceLayoutError, match=r"^benchmark.columns.answer: a reference answer is a record"):
        stage(tmp_path, entry)


def test_row_filter_keeps_only_matching_rows_and_says_so(tmp_path: Path, png: bytes) -> None:
    rows = [{"q": f"q{i}?", "a": "yes", "split": s, "img": png} for i, s in enumerate(["val", "test", "val", "dev"])]
    path = write_table(tmp_path / "f.parquet", rows)
    cols = {"question": "q", "answer": "a", "image": "img"}
    entry = {
        "path": str(path),
        "answer_type": "yes_no",
        "columns": cols,
        "filter": {"column": "split", "equals": "val"},
    }
    items, rejects, _ = stage(tmp_path, entry)
    assert items["question"].to_list() == ["q0?", "q2?"]
    assert rejects["reason"].to_list() == ["filtered_out", "filtered_out"]
    entry["filter"] = {"column": "split", "in": ["val", "dev"]}
    items, _, _ = stage(tmp_path, entry, name="in")
    assert items["question"].to_list() == ["q0?", "q2?", "q3?"]


@pytest.mark.parametrize(
    ("answer", "options", "expected"),
    [
        (True, None, "yes_no"), (False, None, "yes_no"), ("True", None, "yes_no"), ("no.", None, "yes_no"),
        (1, None, "count"), (0, None, "count"), (2.5, None, "count"), ("three", None, "count"),
        ("a red car", None, "open"), ("B", ["x", "y"], "multiple_choice"),
    ],
)  # fmt: skip
def test_answer_type_auto_types_a_boolean_gold_as_yes_no_never_as_a_count(
    answer: object, options: list[str] | None, expected: str
) -> None:
    """A JSON true is a Python bool, and bool is an int: it must be read as yes/no before numbers are tried."""
    from blindspot.benchmarks.gold import infer_answer_type

    assert infer_answer_type(answer, options) == expected
