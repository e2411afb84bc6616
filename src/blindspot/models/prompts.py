"""How a model's chat template wraps a prompt's text (and its images); the text itself is :mod:`blindspot.prompts`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from jaxtyping import Bool, Int


def chat_messages(text: str, n_images: int) -> list[dict[str, Any]]:
    """One user turn: the images first, in order (where there are any), then the text."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def render_prompt(processor: Any, text: str, n_images: int) -> str:
    """The chat-templated prompt with the generation prompt appended (a base language model without a chat
    template reads the text as it is)."""
    if n_images == 0 and getattr(processor, "chat_template", None) is None:
        return text
    return str(processor.apply_chat_template(chat_messages(text, n_images), add_generation_prompt=True, tokenize=False))


class PromptCache:
    """Rendered prompts per item (row of the items table), with and without its images, each built once.

    ``text`` gives an item's user text (a benchmark's prompt function at the configured prompt version)."""

    def __init__(self, processor: Any, items: list[dict[str, Any]], text: Callable[[Mapping[str, Any]], str]) -> None:
        self._processor, self._items, self.text = processor, items, text
        self._cache: dict[tuple[int, bool], str] = {}
        self._lengths: dict[tuple[int, bool], int] = {}

    def get(self, item: int, with_image: bool) -> str:
        key = (item, with_image)
        if key not in self._cache:
            row = self._items[item]
            n_images = len(row["image_keys"]) if with_image else 0
            self._cache[key] = render_prompt(self._processor, self.text(row), n_images)
        return self._cache[key]

    def length(self, item: int, with_image: bool) -> int:
        """The prompt's length in text tokens (image placeholders count once each, before expansion)."""
        key = (item, with_image)
        if key not in self._lengths:
            tokenizer = getattr(self._processor, "tokenizer", self._processor)
            self._lengths[key] = len(tokenizer(self.get(item, with_image), add_special_tokens=False)["input_ids"])
        return self._lengths[key]


def question_mask(
    loaded: Any, input_ids: Int[torch.Tensor, "batch seq"], question: str
) -> Bool[torch.Tensor, "batch seq"]:
    """Positions of the question's own tokens: the last occurrence of its token sequence in the prompt."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for variant in (question, " " + question, "\n" + question):
        ids = loaded.tokenizer.encode(variant, add_special_tokens=False)[1:-1] or []
        if len(ids) < 1:
            continue
        for row in range(input_ids.shape[0]):
            seq = input_ids[row].tolist()
            for start in range(len(seq) - len(ids), -1, -1):
                if seq[start : start + len(ids)] == ids:
                    mask[row, start : start + len(ids)] = True
                    break
        if mask.any():
            return mask
    return mask
