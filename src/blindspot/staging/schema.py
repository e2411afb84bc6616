"""The canonical tables every adapter's output is brought to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("options", pa.list_(pa.string())),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("answers", pa.list_(pa.string())),
        pa.field("answer_type", pa.string(), nullable=False),
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("source_index", pa.int64(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),
    ]
)
"""One row per staged item. ``options`` is null for open answers; ``answer`` is the canonical gold answer
(an option letter for multiple choice, ``yes``/``no``, a normalised number, or text); ``answers`` holds every
reference answer where there are several (TextVQA's ten). ``width``/``height`` are the source image's.
``metadata`` is a JSON object of the source's other columns."""

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("source_index", pa.int64(), nullable=False),
        pa.field("item_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
    ]
)
"""One row per source row that did not stage. ``reason`` is a short category for grouping."""

IMAGES_SCHEMA = pa.schema(
    [
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("data", pa.binary(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
    ]
)
"""Unique source images (encoded bytes as published), keyed by the sha256 of those bytes."""


@dataclass(frozen=True)
class RawItem:
    """What an adapter yields for one source row, before validation and canonicalisation."""

    source_index: int
    source_id: str | None
    question: Any
    options: list[str] | None
    answer: Any
    image: Any
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reject:
    """A source row that did not stage, with a category and a human-readable message."""

    source_index: int
    item_id: str | None
    reason: str
    message: str


class RejectedItem(ValueError):
    """Raised while canonicalising one item; becomes a row of the rejects table."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
