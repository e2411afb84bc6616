"""Tiny copies of the twelve published benchmarks, in their download layouts with exactly the upstream columns and
types (Hugging Face image structs, base64 text images, stringified and inline option lists, several images, missing
images), built from a few generated pictures. Never a download.

Each builder writes a download folder and returns a :class:`Fixture`: the config entry a user would write, and
what staging must produce (item count, rejects by reason) and the first item's exact prompt.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from blindspot.images import encode_png

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@dataclass(frozen=True)
class Fixture:
    entry: dict[str, Any]
    items: int
    rejects: dict[str, int] = field(default_factory=dict)
    first_prompt: str = ""


def picture(seed: int, height: int = 40, width: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_png(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def struct(seed: int) -> dict[str, Any]:
    return {"bytes": picture(seed), "path": f"{seed}.png"}


def write(path: Path, rows: list[dict[str, Any]], schema: dict[str, pa.DataType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=pa.schema(list(schema.items())))
    pq.write_table(table, path)


S, I64 = pa.string(), pa.int64()

POPE_SCHEMA = {"id": S, "question_id": S, "question": S, "answer": S, "image_source": S, "image": IMAGE, "category": S}


def _pope_rows() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for c, category in enumerate(("adversarial", "popular", "random")):
        out[category] = [
            {"id": str(2 * c + q), "question_id": str(q + 1), "question": f"Is there a {obj} in the image?",
             "answer": answer, "image_source": f"COCO_val2014_{c:012d}", "image": struct(c), "category": category}
            for q, (obj, answer) in enumerate((("dog", "yes"), ("car", "no")))
        ]  # fmt: skip
    return out


def pope(root: Path) -> Fixture:
    for category, rows in _pope_rows().items():
        write(root / "Full" / f"{category}-00000-of-00001.parquet", rows, POPE_SCHEMA)
    prompt = "Is there a dog in the image?\nAnswer the question using a single word or phrase."
    return Fixture({"adapter": "pope", "path": str(root)}, items=6, first_prompt=prompt)


def repope(root: Path) -> Fixture:
    """RePOPE drops popular/2, relabels adversarial/2 (no -> yes) and names another image for random/1."""
    labels = root / "RePOPE" / "annotations"
    labels.mkdir(parents=True)
    for category, rows in _pope_rows().items():
        write(root / "POPE" / "Full" / f"{category}-00000-of-00001.parquet", rows, POPE_SCHEMA)
        records = []
        for row in rows:
            if category == "popular" and row["question_id"] == "2":
                continue
            label = "yes" if category == "adversarial" else row["answer"]
            image = "COCO_val2014_999999999999" if category == "random" and row["question_id"] == "1" else row[
                "image_source"]  # fmt: skip
            records.append({"question_id": int(row["question_id"]), "image": f"{image}.jpg",
                            "text": row["question"], "label": label})  # fmt: skip
        (labels / f"coco_repope_{category}.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    entry = {"adapter": "repope", "path": str(root / "POPE"), "labels": str(root / "RePOPE")}
    prompt = "Is there a dog in the image?\nAnswer the question using a single word or phrase."
    return Fixture(entry, items=4, rejects={"dropped_by_repope": 1, "label_mismatch": 1}, first_prompt=prompt)


def hrbench(root: Path) -> Fixture:
    schema = {"index": I64, "question": S, "answer": S, "category": S, "cycle_category": S, "A": S, "B": S, "C": S,
              "D": S, "image": S}  # fmt: skip
    rows = []
    for i in range(4):
        options = ["red", "green", "blue", "white"]
        shift = i % 2
        rotated = options[shift:] + options[:shift]
        rows.append({"index": i, "question": "What colour is the small flag?", "answer": "ABCD"[rotated.index("blue")],
                     "category": "single" if i < 2 else "cross", "cycle_category": f"cycle_{shift}",
                     **dict(zip("ABCD", rotated, strict=True)),
                     "image": base64.b64encode(picture(10 + i // 2, 64, 80)).decode()})  # fmt: skip
    write(root / "hrbench_version_split" / "hrbench_4k-00000-of-00001.parquet", rows, schema)
    prompt = "What colour is the small flag?\nA. red\nB. green\nC. blue\nD. white\nAnswer the option letter directly."
    return Fixture({"adapter": "hrbench", "path": str(root)}, items=4, first_prompt=prompt)


def hallusionbench(root: Path) -> Fixture:
    schema = {"category": S, "subcategory": S, "visual_input": S, "set_id": S, "figure_id": S, "sample_note": S,
              "question_id": S, "question": S, "gt_answer_details": S, "gt_answer": S, "filename": S,
              "image": IMAGE}  # fmt: skip
    rows = []
    for figure in ("0", "1"):
        for question in ("0", "1"):
            rows.append({"category": "VD", "subcategory": "chart", "visual_input": "1", "set_id": "3",
                         "figure_id": figure, "sample_note": "", "question_id": question,
                         "question": f"Is bar {question} taller than bar 2?", "gt_answer_details": "",
                         "gt_answer": "1" if figure == question else "0", "filename": f"f{figure}.png",
                         "image": struct(20 + int(figure))})  # fmt: skip
    rows.append({"category": "VS", "subcategory": "map", "visual_input": "0", "set_id": "4", "figure_id": "0",
                 "sample_note": "", "question_id": "0", "question": "Is Paris the capital of France?",
                 "gt_answer_details": "", "gt_answer": "1", "filename": None, "image": None})  # fmt: skip
    write(root / "data" / "image-00000-of-00001.parquet", rows, schema)
    return Fixture({"adapter": "hallusionbench", "path": str(root)}, items=4, rejects={"no_image": 1},
                   first_prompt="Is bar 0 taller than bar 2?")  # fmt: skip


def vstar(root: Path) -> Fixture:
    schema = {"image": IMAGE, "text": S, "label": S, "question_id": S, "category": S}
    instruction = "Answer with the option's letter from the given choices directly."
    rows = [{"image": struct(30 + i), "text": f"What is the colour of the cup?\n(A) red\n(B) blue\n{instruction}",
             "label": "AB"[i % 2], "question_id": f"sa_{i}",
             "category": ("direct_attributes", "relative_position")[i % 2]} for i in range(3)]  # fmt: skip
    write(root / "data" / "test-00000-of-00001.parquet", rows, schema)
    return Fixture({"adapter": "vstar", "path": str(root)}, items=3, first_prompt=rows[0]["text"])


def vlmbias(root: Path) -> Fixture:
    schema = {"image": IMAGE, "ID": S, "prompt": S, "ground_truth": S, "expected_bias": S, "topic": S,
              "sub_topic": S}  # fmt: skip
    rows = [
        {"image": struct(40), "ID": "logo_1", "prompt": "How many stripes are in the logo? Answer with a number in "
         "curly brackets, e.g., {9}.", "ground_truth": "4", "expected_bias": "3", "topic": "Logos",
         "sub_topic": "shoes"},
        {"image": struct(41), "ID": "flag_1", "prompt": "Is this the flag of the United States? Answer in curly "
         "brackets, e.g., {Yes} or {No}.", "ground_truth": "No", "expected_bias": "Yes", "topic": "Flags",
         "sub_topic": "stars"},
        {"image": struct(42), "ID": "animal_1", "prompt": "How many legs does this animal have? Answer with a number "
         "in curly brackets, e.g., {9}.", "ground_truth": "5", "expected_bias": "4", "topic": "Animals",
         "sub_topic": "mammals"},
    ]  # fmt: skip
    write(root / "data" / "main-00000-of-00001.parquet", rows, schema)
    return Fixture({"adapter": "vlmbias", "path": str(root)}, items=3, first_prompt=rows[0]["prompt"])


def mmmu(root: Path) -> Fixture:
    schema = {"id": S, "question": S, "options": S, "explanation": S,
              **{f"image_{i}": IMAGE for i in range(1, 8)}, "img_type": S, "answer": S, "topic_difficulty": S,
              "question_type": S, "subfield": S}  # fmt: skip
    empty = {f"image_{i}": None for i in range(1, 8)}
    rows = [
        {**empty, "id": "validation_Art_1", "question": "Which painting is shown in <image 1>?",
         "options": "['Mona Lisa', 'The Scream', 'Guernica']", "image_1": struct(50), "answer": "B",
         "question_type": "multiple-choice"},
        {**empty, "id": "validation_Art_2", "question": "Compare <image 2> with <image 1>. Which is older?",
         "options": "['The first', 'The second']", "image_1": struct(51), "image_2": struct(52), "answer": "A",
         "question_type": "multiple-choice"},
        {**empty, "id": "validation_Math_1", "question": "What is the area in <image 1>?", "options": "[]",
         "image_1": struct(53), "answer": "['12', '12.0']", "question_type": "open"},
        {**empty, "id": "validation_Math_2", "question": "What do <image 1> and <image 3> show?", "options": "[]",
         "image_1": struct(54), "answer": "a square", "question_type": "open"},
    ]  # fmt: skip
    for row in rows:
        row.update(explanation="", img_type="['Paintings']", topic_difficulty="Easy", subfield="Art History")
    write(root / "validation-00000-of-00001.parquet", rows, schema)
    prompt = ("Which painting is shown in <image 1>?\nA. Mona Lisa\nB. The Scream\nC. Guernica\n"
              "Answer with the option's letter from the given choices directly.")  # fmt: skip
    return Fixture({"adapter": "mmmu", "path": str(root)}, items=3, rejects={"missing_image": 1},
                   first_prompt=prompt)  # fmt: skip


def ai2d(root: Path) -> Fixture:
    schema = {"question": S, "options": pa.list_(S), "answer": S, "image": IMAGE}
    rows = [{"question": f"Which stage comes after stage {i}?", "options": ["egg", "larva", "pupa", "adult"],
             "answer": str(i), "image": struct(60 + i)} for i in range(3)]  # fmt: skip
    write(root / "data" / "test-00000-of-00001.parquet", rows, schema)
    prompt = ("Which stage comes after stage 0?\nA. egg\nB. larva\nC. pupa\nD. adult\n"
              "Answer with the option's letter from the given choices directly.")  # fmt: skip
    return Fixture({"adapter": "ai2d", "path": str(root)}, items=3, first_prompt=prompt)


def mmstar(root: Path) -> Fixture:
    schema = {"index": I64, "question": S, "image": IMAGE, "answer": S, "category": S, "l2_category": S}
    rows = [{"index": i, "question": "Which object is on the left?\nOptions: A: a cat, B: a dog, C: a bird, D: a car",
             "image": struct(70 + i), "answer": "ABCD"[i], "category": ("coarse perception", "math")[i % 2],
             "l2_category": "image scene"} for i in range(3)]  # fmt: skip
    write(root / "mmstar" / "val-00000-of-00001.parquet", rows, schema)
    prompt = rows[0]["question"] + "\nAnswer with the option's letter from the given choices directly."
    return Fixture({"adapter": "mmstar", "path": str(root)}, items=3, first_prompt=prompt)


def mmbench(root: Path) -> Fixture:
    schema = {"index": I64, "question": S, "hint": S, "A": S, "B": S, "C": S, "D": S, "answer": S, "category": S,
              "image": IMAGE, "source": S, "l2-category": S, "comment": S, "split": S}  # fmt: skip
    base = {"category": "attribute_recognition", "source": "x", "l2-category": "fine", "comment": None, "split": "dev"}
    rows = [
        {**base, "index": 0, "question": "What colour is the ball?", "hint": None, "A": "red", "B": "blue",
         "C": "green", "D": None, "answer": "A", "image": struct(80)},
        {**base, "index": 1_000_000, "question": "What colour is the ball?", "hint": None, "A": "blue", "B": "green",
         "C": "red", "D": None, "answer": "C", "image": struct(80)},
        {**base, "index": 1, "question": "Which season is it?", "hint": "The trees have no leaves.", "A": "winter",
         "B": "summer", "C": "spring", "D": "autumn", "answer": "A", "image": struct(81)},
    ]  # fmt: skip
    write(root / "en" / "dev-00000-of-00001.parquet", rows, schema)
    prompt = "What colour is the ball?\nA. red\nB. blue\nC. green\nAnswer with the option's letter from the given " \
             "choices directly."  # fmt: skip
    return Fixture({"adapter": "mmbench", "path": str(root)}, items=3, first_prompt=prompt)


def scienceqa(root: Path) -> Fixture:
    schema = {"image": IMAGE, "question": S, "choices": pa.list_(S), "answer": pa.int8(), "hint": S, "task": S,
              "grade": S, "subject": S, "topic": S, "category": S, "skill": S, "lecture": S, "solution": S}  # fmt: skip
    extra = {"task": "closed choice", "grade": "grade4", "subject": "natural science", "topic": "geography",
             "category": "Geography", "skill": "Read a map", "lecture": "", "solution": ""}  # fmt: skip
    rows = [
        {**extra, "image": struct(90), "question": "Which state is highlighted?", "choices": ["Ohio", "Utah"],
         "answer": 1, "hint": ""},
        {**extra, "image": struct(91), "question": "Which animal's feet are adapted for digging?",
         "choices": ["mole", "duck", "horse"], "answer": 0, "hint": "Moles live underground."},
        {**extra, "image": None, "question": "Which word is a noun?", "choices": ["run", "tree"], "answer": 1,
         "hint": ""},
    ]  # fmt: skip
    write(root / "ScienceQA-IMG" / "test-00000-of-00001.parquet", rows, schema)
    prompt = "Which state is highlighted?\nA. Ohio\nB. Utah\nAnswer with the option's letter from the given choices " \
             "directly."  # fmt: skip
    return Fixture({"adapter": "scienceqa", "path": str(root)}, items=2, rejects={"no_image": 1}, first_prompt=prompt)


def cvbench(root: Path) -> Fixture:
    schema = {"idx": I64, "type": S, "task": S, "image": IMAGE, "question": S, "choices": pa.list_(S), "answer": S,
              "prompt": S, "filename": S, "source": S}  # fmt: skip
    rows = []
    for i, (kind, task, source) in enumerate((("2D", "Count", "ADE20K"), ("2D", "Relation", "COCO"),
                                             ("3D", "Depth", "Omni3D"))):  # fmt: skip
        question = "How many chairs are in the image?"
        choices = ["3", "2", "1", "0"]
        prompt = question + " Select from the following choices.\n" + "\n".join(
            f"({'ABCD'[j]}) {c}" for j, c in enumerate(choices))  # fmt: skip
        rows.append({"idx": i, "type": kind, "task": task, "image": struct(100 + i), "question": question,
                     "choices": choices, "answer": "(B)", "prompt": prompt, "filename": f"img/{i}.png",
                     "source": source})  # fmt: skip
    write(root / "test-00000-of-00001.parquet", rows, schema)
    first = rows[0]["prompt"] + "\nAnswer with the option's letter from the given choices directly."
    return Fixture({"adapter": "cvbench", "path": str(root)}, items=3, first_prompt=first)


def textvqa(root: Path) -> Fixture:
    schema = {"image_id": S, "question_id": I64, "question": S, "question_tokens": pa.list_(S), "image": IMAGE,
              "image_width": I64, "image_height": I64, "answers": pa.list_(S), "ocr_tokens": pa.list_(S),
              "set_name": S}  # fmt: skip
    rows = [{"image_id": f"img{i}", "question_id": 34602 + i, "question": "what brand is the drink?",
             "question_tokens": ["what", "brand"], "image": struct(110 + i), "image_width": 48, "image_height": 40,
             "answers": ["coca cola"] * 7 + ["coke"] * 3, "ocr_tokens": ["coca"], "set_name": "val"}
            for i in range(3)]  # fmt: skip
    write(root / "data" / "validation-00000-of-00003.parquet", rows, schema)
    prompt = "what brand is the drink?\nAnswer the question using a single word or phrase."
    return Fixture({"adapter": "textvqa", "path": str(root)}, items=3, first_prompt=prompt)


BUILDERS: dict[str, Callable[[Path], Fixture]] = {
    "repope": repope,
    "pope": pope,
    "hrbench": hrbench,
    "hallusionbench": hallusionbench,
    "vstar": vstar,
    "vlmbias": vlmbias,
    "mmmu": mmmu,
    "ai2d": ai2d,
    "mmstar": mmstar,
    "mmbench": mmbench,
    "scienceqa": scienceqa,
    "cvbench": cvbench,
    "textvqa": textvqa,
}
