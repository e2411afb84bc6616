"""Versioned prompt templates. A template change is a new version: outputs record the version they used, and the
snapshot test (tests/test_prompts.py) pins the exact rendered prompt of each answer type for each model family.

Version v1 follows lmms-eval's post-prompts for the same answer types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blindspot.staging.gold import LETTERS


@dataclass(frozen=True)
class PromptTemplate:
    multiple_choice: str
    yes_no: str
    open: str
    count: str

    def instruction(self, answer_type: str) -> str:
        return getattr(self, answer_type)


PROMPTS: dict[str, PromptTemplate] = {
    "v1": PromptTemplate(
        multiple_choice="Answer with the option's letter from the given choices directly.",
        yes_no="Answer the question using a single word: yes or no.",
        open="Answer the question using a single word or phrase.",
        count="Answer with a single number.",
    )
}


def question_text(question: str, options: list[str] | None, answer_type: str, version: str) -> str:
    """The user text: question, lettered options (multiple choice), and the answer-type instruction."""
    template = PROMPTS[version]
    parts = [question.strip()]
    if answer_type == "multiple_choice" and options:
        parts.append("\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options)))
    parts.append(template.instruction(answer_type))
    return "\n".join(parts)


def chat_messages(text: str, with_image: bool) -> list[dict[str, Any]]:
    """One user turn: the image first (where there is one), then the text."""
    content: list[dict[str, Any]] = [{"type": "image"}] if with_image else []
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def render_prompt(processor: Any, text: str, with_image: bool) -> str:
    return processor.apply_chat_template(chat_messages(text, with_image), add_generation_prompt=True, tokenize=False)


class PromptCache:
    """Rendered prompts per item (row of the items table), with and without an image, each built once."""

    def __init__(self, processor: Any, items: list[dict[str, Any]], version: str) -> None:
        self._processor, self._items, self._version = processor, items, version
        self._cache: dict[tuple[int, bool], str] = {}

    def get(self, item: int, with_image: bool) -> str:
        key = (item, with_image)
        if key not in self._cache:
            row = self._items[item]
            text = question_text(row["question"], row["options"], row["answer_type"], self._version)
            self._cache[key] = render_prompt(self._processor, text, with_image)
        return self._cache[key]


def option_labels(answer_type: str, options: list[str] | None) -> list[str] | None:
    """The closed answer space scored from the first-token distribution (None for open answers)."""
    if answer_type == "multiple_choice" and options:
        return list(LETTERS[: len(options)])
    if answer_type == "yes_no":
        return ["yes", "no"]
    return None
