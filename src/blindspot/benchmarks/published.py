"""Reading a benchmark as its publisher ships it: a Hugging Face dataset download folder of parquet shards.

``hf download --repo-type dataset ID --local-dir DIR`` writes shards named
``[<subset>/]<split>-00000-of-0000N.parquet`` (or ``<subset>/<split>/0000.parquet`` in the converted-parquet
layout). A published benchmark's config names that folder plus a split and a subset with the published
defaults; :meth:`PublishedBenchmark.parquet_files` finds the split's shards in either layout, and
:func:`published_rows` streams their rows after checking that the columns the adapter reads are there.
The ``lmms-lab/*`` and ``lmms-lab-encoder/*`` copies share one layout, so either download works.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pyarrow.parquet as pq
from pydantic import Field

from blindspot.benchmarks.gold import options_from_question, parse_options
from blindspot.benchmarks.registry import BenchmarkConfigBase
from blindspot.benchmarks.sources import SourceError, guarded_row, unreadable
from blindspot.config_base import PathKind
from blindspot.contracts.items import RawItem, Reject, RejectedItem


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def _in_split(file: Path, root: Path, split: str) -> bool:
    """A shard belongs to a split when its name is the split, or starts with it and a separator
    (``test-00000-of-00001``, ``test_2d``: not ``testmini``), or a folder on its path is named so."""
    stem, wanted = file.stem.casefold(), split.casefold()
    if stem == wanted or any(stem.startswith(wanted + sep) for sep in "-_."):
        return True
    return _norm(split) in {_norm(part) for part in file.relative_to(root).parts[:-1]}


def _group(file: Path) -> str:
    return file.stem.split("-", 1)[0]


SPLIT_KEYWORDS = frozenset({"train", "training", "test", "testing", "eval", "evaluation", "validation", "valid", "val",
                            "dev"})  # fmt: skip
"""The words Hugging Face's loader reads a split from in a file name; a file named with none of them (MMStar's
``mmstar.parquet``) holds the dataset's one split, whatever the card calls it."""


def _names_a_split(file: Path) -> bool:
    return bool(set(re.split(r"[^a-z0-9]+", _group(file).casefold())) & SPLIT_KEYWORDS)


class PublishedBenchmark(BenchmarkConfigBase):
    """A benchmark read from its published download. Subclasses fix ``adapter`` and the defaults of ``split``
    and ``subset``, and name the columns they read in ``required_columns``."""

    required_columns: ClassVar[tuple[str, ...]] = ()
    path: str = Field(
        description="The dataset's download folder (hf download --repo-type dataset ID --local-dir "
        "DIR), or one parquet file of it."
    )
    split: str | list[str] = Field(description="The split (or splits) to stage.")
    subset: str | None = Field(None, description="The dataset config (subset) folder, where the dataset has several.")

    def paths(self) -> list[tuple[str, str, PathKind]]:
        return [("path", self.path, "any")]

    def input_files(self) -> list[str]:
        try:
            return [str(p) for p in self.parquet_files()]
        except SourceError:
            return []

    def splits(self) -> list[str]:
        return self.split if isinstance(self.split, list) else [self.split]

    def parquet_files(self) -> list[Path]:
        """The parquet shards of the configured split(s), in split order then path order."""
        root = Path(self.path)
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise SourceError(f"'{root}' does not exist; download the dataset there or fix `path`")
        files = sorted(root.rglob("*.parquet"))
        if not files:
            raise SourceError(f"no .parquet files under '{root}'; is it the dataset's download folder?")
        if self.subset is not None:
            files = self._in_subset(root, files)
        chosen: list[Path] = []
        for split in self.splits():
            matching = [f for f in files if _in_split(f, root, split)]
            if not matching and len(self.splits()) == 1 and not any(_names_a_split(f) for f in files):
                matching = files  # shards named without a split word: the dataset's only split
            if not matching:
                found = sorted({_group(f) for f in files})
                raise SourceError(
                    f"no parquet shards of split '{split}' under '{root}' (shards found: {', '.join(found)}); "
                    "set `split`",
                    key="benchmark.split",
                )
            chosen += [f for f in matching if f not in chosen]
        return chosen

    def _in_subset(self, root: Path, files: list[Path]) -> list[Path]:
        """The shards of the configured subset. A download with no subset folders (shards at the top or under
        ``data/``, as a one-config dataset is published) is that subset; one with other subsets' folders is not."""
        assert self.subset is not None
        inside = [f for f in files if _norm(self.subset) in {_norm(p) for p in f.relative_to(root).parts[:-1]}]
        if inside:
            return inside
        folders = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1} - {"data"})
        if not folders:
            return files
        raise SourceError(
            f"no subset '{self.subset}' under '{root}' (subsets found: {', '.join(folders)}); set `subset`",
            key="benchmark.subset",
        )

    def columns(self) -> list[str]:
        file = self.parquet_files()[0]
        try:
            return list(pq.read_schema(file).names)
        except Exception as error:  # pyarrow raises several types for a damaged or empty file
            raise unreadable(file, error) from None

    def data_problems(self) -> list[str]:
        try:
            available = self.columns()
        except SourceError as error:
            return [str(error).removeprefix("benchmark.")]
        missing = [c for c in self.required_columns if c not in available]
        if missing:
            return [
                f"path: '{self.path}' has no column(s) {', '.join(missing)} (columns: {', '.join(available)}); is it "
                f"the download of the {self.adapter} dataset, at the right split?"
            ]
        return []


def published_rows(config: PublishedBenchmark, batch_size: int = 32) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(source index, split, row) of every row of the configured shards, after the column check; stops at
    ``limit``."""
    problems = config.data_problems()
    if problems:
        key, _, message = problems[0].partition(": ")
        raise SourceError(message, key=f"benchmark.{key}")
    index = 0
    root = Path(config.path)
    for file in config.parquet_files():
        split = next((s for s in config.splits() if root.is_file() or _in_split(file, root, s)), config.splits()[0])
        try:
            reader = pq.ParquetFile(file)
        except Exception as error:  # pyarrow raises several types for a corrupt file
            raise unreadable(file, error) from None
        for batch in reader.iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                if config.limit is not None and index >= config.limit:
                    return
                yield index, split, row
                index += 1


C = TypeVar("C", bound="PublishedBenchmark")


def guarded_rows(
    config: C, convert: Callable[[C, int, str, dict[str, Any]], RawItem | Reject]
) -> Iterator[RawItem | Reject]:
    """Every row of the configured shards through ``convert`` (an adapter's row -> item), each guarded by
    :func:`guarded_row`, so one bad row is a reject and the rows after it are still read."""
    for index, split, row in published_rows(config):
        yield guarded_row(index, lambda: convert(config, index, split, row))  # noqa: B023 (called at once)


def text_or_none(value: Any) -> str | None:
    """A cell as stripped text; None for a missing value (None, NaN, empty or 'nan')."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return None if not text or text.casefold() == "nan" else text


def option_columns(row: dict[str, Any], letters: Sequence[str]) -> list[str]:
    """Options held one per column (MMBench's and HR-Bench's A, B, C, D), stopping at the first empty one."""
    options = []
    for letter in letters:
        text = text_or_none(row.get(letter))
        if text is None:
            break
        options.append(text)
    return options


def item_meta(item: Mapping[str, Any]) -> dict[str, Any]:
    """A staged item's metadata, decoded."""
    meta = item["metadata"]
    return json.loads(meta) if isinstance(meta, str) else dict(meta)


MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
SHORT_INSTRUCTION = "Answer the question using a single word or phrase."


def choice_item(
    index: int,
    item_id: str | None,
    question: Any,
    options: list[str] | None,
    answer: Any,
    image: Any,
    answer_format: str = "letter",
    **metadata: Any,
) -> RawItem:
    """A one-image multiple-choice item (most published benchmarks)."""
    return RawItem(
        source_index=index,
        source_id=item_id,
        question=question,
        options=options,
        answer=answer,
        images=[image],
        answer_type="multiple_choice",
        answer_format=answer_format,
        metadata=metadata,
    )


def inline_choice_item(
    index: int, item_id: str | None, text: Any, answer: Any, image: Any, **metadata: Any
) -> RawItem | Reject:
    """A multiple-choice item whose options are written inside its text (MMStar, V*): the options are read out
    for parsing and scoring; a text without them is a reject."""
    split = options_from_question(str(text))
    if split is None:
        return Reject(index, item_id, "bad_options", "no options (A, B, ...) found in the question text")
    question, options = split
    return choice_item(index, item_id, question, options, answer, image, **metadata)


def listed_options(index: int, item_id: str | None, value: Any) -> list[str] | Reject:
    """Options published as a list or a stringified list; a malformed one is a reject."""
    try:
        options = parse_options(value)
    except RejectedItem as error:
        return Reject(index, item_id, error.reason, error.message)
    return options or []
