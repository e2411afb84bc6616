"""What a benchmark reader yields for each source row: a raw item, or a reject with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blindspot.contracts.answers import AnswerType


@dataclass(frozen=True)
class RawItem:
    """One source row, before validation and canonicalisation."""

    source_index: int
    source_id: str | None
    question: Any
    options: list[str] | None
    answer: Any
    images: list[Any]
    """Every image of the item, in the order the prompt shows them (bytes, struct, base64 or path each)."""
    answer_type: AnswerType
    """multiple_choice | yes_no | open | count (per item: one benchmark may mix them)."""
    answer_format: str = "auto"
    """How a multiple-choice answer is written in the source: auto | letter | index | text."""
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


def image_group(image_keys: list[str]) -> str:
    """An item's source-image cluster: its image keys joined. Items sharing it are not independent (they move
    together in the bootstrap) and never straddle probe folds."""
    return "+".join(image_keys)
