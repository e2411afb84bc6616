"""The ``generic`` benchmark: one described entirely by its config entry.

A local parquet or JSONL file (or a folder of parquet shards) plus an optional image folder, a column mapping and
an answer type. Images may be embedded bytes, Hugging Face image structs, base64 strings, or paths; an item may
have several (a list column, or a list of columns such as MMMU's image_1 ... image_7). Prompting, parsing and
scoring follow the answer type (the registry's defaults).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydantic import Field, StrictBool, model_validator

from blindspot.benchmarks.gold import infer_answer_type, options_from_question, parse_options
from blindspot.benchmarks.official import OfficialInput, Scores, all_correct_rate, weighted_mean
from blindspot.benchmarks.registry import BenchmarkConfigBase, BenchmarkSpec, Item, image_cluster, register
from blindspot.benchmarks.sources import SourceError, guarded_row, iter_rows, parquet_files, source_columns
from blindspot.config_base import PathKind, StrictModel
from blindspot.contracts.answers import ANSWER_TYPES, AnswerType
from blindspot.contracts.items import RawItem, Reject, RejectedItem


class ColumnMapping(StrictModel):
    """Which source column holds each canonical field."""

    id: str | list[str] | None = Field(
        None,
        description="Item id column, or a list of columns that together identify an item (joined with '/'); it "
        "must be unique. Without it ids are content hashes.",
    )
    question: str = "question"
    options: str | list[str] | None = Field(
        None,
        description="One column holding a list (or a JSON / Python-literal list string), or a list of "
        "columns holding one option each (e.g. [A, B, C, D]; empty ones are skipped).",
    )
    answer: str = "answer"
    image: str | list[str] = Field(
        "image",
        description="One column holding an image or a list of images, or a list of columns holding one image "
        "each (e.g. [image_1, image_2]; empty ones are skipped). Images are shown in this order.",
    )
    metadata: list[str] | None = Field(
        None,
        description="Columns copied into the item's metadata (nested values are kept, as JSON; a listed column "
        "that holds binary data such as an image is refused in one line); default: every other column that holds "
        "no binary data, image or long text.",
    )
    answer_type: str | None = Field(
        None,
        description="A column naming each item's answer type (a benchmark that mixes them); its values are "
        "read through `answer_type_values` (default: the type names themselves).",
    )


class RowFilter(StrictModel):
    """Stage only the rows whose ``column`` equals ``equals`` or is one of ``in``."""

    column: str
    equals: str | int | float | bool | None = None
    in_: list[str | int | float | bool] | None = Field(None, alias="in")

    @model_validator(mode="after")
    def _one_test(self) -> RowFilter:
        if (self.equals is None) == (self.in_ is None):
            raise ValueError("give exactly one of 'equals' and 'in'")
        return self

    def keeps(self, value: Any) -> bool:
        allowed = [self.equals] if self.in_ is None else self.in_
        return any(value == a or str(value) == str(a) for a in allowed)


class PairedOfficial(StrictModel):
    """Official aggregates computed over groups of items, as a benchmark family defines them: MME's acc+ (every
    question about an image answered right), its score (acc + acc+ per category, summed), HallusionBench-like
    question-pair accuracy. Written as ``official_<metric>`` rows per condition, with bootstrap intervals."""

    group_by: str = Field(
        "image",
        description="What makes a group: 'image' (items that share their source image or images), or a "
        "metadata column (listed in columns.metadata, or kept by default) whose value the items of a group share.",
    )
    by: str | None = Field(
        None, description="A metadata column to report each aggregate for, per value (MME: category)."
    )
    score: Literal["none", "mme"] = Field(
        "none",
        description="'mme': MME's score besides accuracy and accuracy_plus: per value of `by`, the mean over groups "
        "of (group accuracy + all right) x 100, summed over the values.",
    )

    @model_validator(mode="after")
    def _score_needs_by(self) -> PairedOfficial:
        if self.score == "mme" and self.by is None:
            raise ValueError("score: mme sums per category: set `by` to the category column")
        return self


class GenericBenchmark(BenchmarkConfigBase):
    """A benchmark described entirely in config: a local parquet/JSONL table plus optional image folder."""

    adapter: Literal["generic"] = "generic"
    path: str = Field(description="A .parquet or .jsonl file, or a directory of .parquet shards.")
    image_root: str | None = Field(None, description="Folder that relative image paths are resolved against.")
    columns: ColumnMapping = ColumnMapping()
    answer_type: Literal["multiple_choice", "yes_no", "open", "count", "auto", "column"] = Field(
        description="The answer type of every item; `auto` derives it per item from the gold answer (options: "
        "multiple choice; yes/no/true/false: yes_no; a number: count; else open); `column` reads it from "
        "`columns.answer_type`."
    )
    answer_type_values: dict[str, AnswerType] = Field(
        default_factory=dict,
        description="How the values of `columns.answer_type` name answer types (e.g. {counting: count}).",
    )
    options_in_question: StrictBool = Field(
        False,
        description="Read the options from the question text (MMStar's 'Options: A: ..., B: ...', V*'s "
        "'(A) ...' lines) and drop them from the question. A question without options is a reject, or a free-form "
        "item under answer_type: auto.",
    )
    filter: RowFilter | None = Field(None, description="Stage only the rows that pass (others are rejected).")
    answer_format: Literal["auto", "letter", "index", "text"] = Field(
        "auto",
        description="How a multiple-choice answer is written in the source. 'auto' accepts a letter, an "
        "integer index or the option text, and rejects an item where these disagree.",
    )
    official: PairedOfficial | None = Field(
        None,
        exclude=True,  # the decay stage's own slice field: changing it rescores, it never restages
        description="Official aggregates over groups of items that share an image (MME's acc+); default: accuracy "
        "only.",
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="Stage only the first N source rows (smoke runs; give such a run its own `results:` folder, "
        "or its outputs replace the full run's).",
    )

    @model_validator(mode="after")
    def _answer_type_column(self) -> GenericBenchmark:
        if (self.answer_type == "column") != (self.columns.answer_type is not None):
            raise ValueError("answer_type: column and columns.answer_type go together (set both or neither)")
        return self

    def paths(self) -> list[tuple[str, str, PathKind]]:
        out: list[tuple[str, str, PathKind]] = [("path", self.path, "any")]
        if self.image_root is not None:
            out.append(("image_root", self.image_root, "directory"))
        return out

    def image_folder(self) -> Path | None:
        return Path(self.image_root) if self.image_root else None

    def official_groups(self) -> PairedOfficial | None:
        return self.official

    def data_problems(self) -> list[str]:
        try:
            available = source_columns(Path(self.path))
            if available is None:  # JSONL: the first row's keys
                first = next((r for r in iter_rows(Path(self.path)) if isinstance(r, dict)), None)
                available = list(first) if first is not None else []
            _check_columns(self, available)
        except SourceError as error:
            return [str(error).removeprefix("benchmark.")]
        if self.answer_type == "multiple_choice" and self.columns.options is None and not self.options_in_question:
            return [
                "columns.options: answer_type multiple_choice needs its options: map columns.options, or set "
                f"options_in_question (columns: {', '.join(available)})"
            ]
        return []

    def input_files(self) -> list[str]:
        path = Path(self.path)
        if path.is_dir():
            try:
                return [str(p) for p in parquet_files(path)]
            except SourceError:
                return []
        return [self.path] if path.is_file() else []


def _names(spec: str | list[str] | None) -> list[str]:
    return spec if isinstance(spec, list) else [spec] if spec else []


def _mapped_columns(config: GenericBenchmark) -> dict[str, str | list[str] | None]:
    cols = config.columns
    return {
        "id": cols.id,
        "question": cols.question,
        "options": cols.options,
        "answer": cols.answer,
        "image": cols.image,
        "answer_type": cols.answer_type,
    }


def _check_columns(config: GenericBenchmark, available: list[str]) -> None:
    mapped = {**_mapped_columns(config), "metadata": config.columns.metadata}
    for key, column in mapped.items():
        for name in _names(column):
            if name not in available:
                raise SourceError(
                    f"column '{name}' is not in '{config.path}' (columns: {', '.join(available)})",
                    key=f"benchmark.columns.{key}",
                )


def _options(row: dict[str, Any], spec: str | list[str] | None) -> list[str] | None:
    if spec is None:
        return None
    if isinstance(spec, list):
        return parse_options([row.get(name) for name in spec])
    return parse_options(row.get(spec))


def _images(row: dict[str, Any], spec: str | list[str]) -> list[Any]:
    """Every image of a row, in order; missing entries of a list of columns are skipped."""
    if isinstance(spec, list):
        return [row[name] for name in spec if row.get(name) is not None]
    value = row.get(spec)
    if isinstance(value, list | tuple):
        return [v for v in value if v is not None]
    return [value]


def _is_binary(value: Any) -> bool:
    """Bytes, or a Hugging Face image struct ({"bytes": ..., "path": ...})."""
    return isinstance(value, bytes | bytearray | memoryview) or (
        isinstance(value, dict) and isinstance(value.get("bytes"), bytes | bytearray)
    )


def _metadata(row: dict[str, Any], config: GenericBenchmark) -> dict[str, Any]:
    """The item's metadata. A listed column is never dropped: nested values (structs, lists) are kept and written
    as JSON; one that holds binary data is refused in one line (a config error, not a row's). By default every
    other column but binary data and long text (an image as base64) is kept."""
    listed = config.columns.metadata
    used = {c for v in _mapped_columns(config).values() for c in _names(v)}
    out = {}
    for name in listed if listed is not None else [c for c in row if c not in used]:
        value = row.get(name)
        if _is_binary(value):
            if listed is not None:
                raise SourceError(
                    f"column '{name}' holds binary data (an image?), which an item's metadata cannot hold; remove "
                    "it from columns.metadata (map images with columns.image)",
                    key="benchmark.columns.metadata",
                )
            continue
        if listed is None and isinstance(value, str) and len(value) > 2048:
            continue  # by default long text (an image as base64) stays out
        out[name] = value
    return out


def read_generic(config: GenericBenchmark) -> Iterator[RawItem | Reject]:
    path = Path(config.path)
    available = source_columns(path)
    if available is not None:
        _check_columns(config, available)
    for index, row in enumerate(iter_rows(path)):
        if config.limit is not None and index >= config.limit:
            return
        if isinstance(row, str):
            yield Reject(index, None, "malformed_row", row)
            continue
        if available is None:  # JSONL: the columns are the first row's keys, as check-config --data reads them
            available = list(row)
            _check_columns(config, available)
        yield guarded_row(index, lambda: _generic_item(config, index, row))  # noqa: B023 (called at once)


def _generic_item(config: GenericBenchmark, index: int, row: dict[str, Any]) -> RawItem | Reject:
    """One source row through the column mapping: an item, or a reject with its reason."""
    item_id = _item_id(row, config.columns.id)
    if config.filter is not None and not config.filter.keeps(row.get(config.filter.column)):
        value = row.get(config.filter.column)
        return Reject(index, item_id, "filtered_out", f"{config.filter.column} = {value!r} does not pass the filter")
    try:
        question = row.get(config.columns.question)
        options = _options(row, config.columns.options)
        if config.options_in_question and options is None:
            question, options = _split_question(question, free_form_ok=config.answer_type == "auto")
        answer = row.get(config.columns.answer)
        answer_type = _answer_type(config, row, answer, options)
    except RejectedItem as error:
        return Reject(index, item_id, error.reason, error.message)
    return RawItem(
        source_index=index,
        source_id=item_id,
        question=question,
        options=options,
        answer=answer,
        images=_images(row, config.columns.image),
        answer_type=answer_type,
        answer_format=config.answer_format,
        metadata=_metadata(row, config),
    )


def _item_id(row: dict[str, Any], spec: str | list[str] | None) -> str | None:
    values = [row.get(name) for name in _names(spec)]
    if not values or any(v is None for v in values):
        return None
    return "/".join(str(v) for v in values)


def _split_question(question: Any, free_form_ok: bool) -> tuple[Any, list[str] | None]:
    """The question without its lettered options, and the options. A question with none is a free-form item
    under ``answer_type: auto`` (a benchmark that mixes both, as RealWorldQA does) and a reject otherwise."""
    split = options_from_question(question) if isinstance(question, str) else None
    if split is None:
        if free_form_ok:
            return question, None
        raise RejectedItem(
            "bad_options",
            "options_in_question: no options (A, B, ...) found in the question text; set answer_type: auto to "
            "score such rows as free-form answers",
        )
    return split


def _answer_type(config: GenericBenchmark, row: dict[str, Any], answer: Any, options: list[str] | None) -> AnswerType:
    if config.answer_type == "auto":
        return infer_answer_type(answer, options)
    if config.answer_type != "column":
        return config.answer_type
    value = row.get(config.columns.answer_type or "")
    name = config.answer_type_values.get(str(value), str(value))
    if name not in ANSWER_TYPES:
        raise RejectedItem("bad_answer_type", f"answer type {value!r} is not one of {', '.join(ANSWER_TYPES)} "
                           "(map it in answer_type_values)")  # fmt: skip
    return cast(AnswerType, name)


def paired_official(config: PairedOfficial) -> tuple[Callable[[OfficialInput], Scores], Callable[[Item], str]]:
    """(the official scores, the bootstrap cluster) of a benchmark whose config declares aggregates over groups of
    items (:class:`PairedOfficial`). The cluster is the group, so a group's items are drawn together."""

    def group_key(item: Item) -> str:
        if config.group_by == "image":
            return image_cluster(item)
        return f"{config.group_by}={json.loads(item.get('metadata') or '{}').get(config.group_by)}"

    def scores(data: OfficialInput) -> Scores:
        correct = data.array("score")
        keys = [group_key(row) for row in data.frame.iter_rows(named=True)]
        weights = data.weights
        out = {"accuracy": weighted_mean(weights, correct), "accuracy_plus": all_correct_rate(weights, keys, correct)}
        if config.by is None:
            return out
        values = np.array([str(v) for v in data.meta(config.by)])
        total = np.zeros(weights.shape[0])
        for value in sorted(set(values.tolist())):
            mask = values == value
            accuracy = weighted_mean(weights, correct, mask)
            plus = all_correct_rate(weights[:, mask], [k for k, m in zip(keys, mask, strict=True) if m], correct[mask])
            out[f"accuracy_{value}"], out[f"accuracy_plus_{value}"] = accuracy, plus
            total = total + 100 * (accuracy + plus)
        if config.score == "mme":
            out["score"] = total
        return out

    return scores, group_key


GENERIC = register(
    BenchmarkSpec(
        name="generic",
        config=GenericBenchmark,
        description="Local parquet/JSONL + image folder, described by a column mapping in config.",
        read=read_generic,
        source="any local parquet (a file or a folder of shards) or JSONL, plus an image folder",
        columns=("mapped in config: columns.id, question, options, answer, image, metadata, answer_type",),
    )
)
