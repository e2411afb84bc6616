"""Batched greedy generation with option log-probabilities from the same forward pass.

The first generation step's logits are the next-token distribution at the end of the prompt: the log-probability
of each option label (a letter, yes/no) is read from there, so scoring a closed answer space costs nothing beyond
the generation itself. Batches are left-padded; transformers derives position ids (and Qwen's M-RoPE indices)
from the attention mask, so a batch gives the same answers as its items one by one (tests/test_predict.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from jaxtyping import UInt8

from blindspot.models.loading import LoadedModel


@dataclass(frozen=True)
class Request:
    prompt: str
    """The rendered chat prompt (generation prompt appended), with one image placeholder per image."""
    images: tuple[UInt8[np.ndarray, "height width 3"], ...]
    """The item's images in prompt order, RGB; empty for the text-only condition."""
    labels: tuple[str, ...] | None
    """Option labels to score (closed answer spaces), or None."""


@dataclass(frozen=True)
class Response:
    text: str
    option_logprobs: dict[str, float] | None
    """log P(label) over the full vocabulary at the first answer token (summed over the label's spellings)."""
    first_token_is_label: bool | None = None
    """Whether the first generated token spells an option label (None for open answers): only then do the option
    log-probs describe the answer the model gave (a model that starts "The answer is" is scored by its text)."""


def _variants(label: str) -> list[str]:
    forms = {label, label.capitalize(), label.upper(), label.lower()}
    return sorted({f for form in forms for f in (form, " " + form)})


@cache
def _label_token_ids(tokenizer: Any, label: str) -> tuple[int, ...]:
    """First-token ids of every spelling of a label ("yes", " Yes", ...), as a model would start its answer.

    A first token counts only if it spells a non-empty prefix of the label: where a vocabulary has no " B" token,
    " B" starts with a bare space token that every label shares, which says nothing about the label."""
    ids = set()
    for variant in _variants(label):
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        if not encoded:
            continue
        piece = tokenizer.decode(encoded[:1]).strip().casefold()
        if piece and label.casefold().startswith(piece):
            ids.add(encoded[0])
    if not ids:
        raise ValueError(f"no token of the vocabulary starts the label '{label}'")
    return tuple(sorted(ids))


def option_token_ids(tokenizer: Any, labels: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Token ids per label; a first token shared by two labels would make their scores meaningless, so it fails."""
    ids = {label: _label_token_ids(tokenizer, label) for label in labels}
    seen: dict[int, str] = {}
    for label, token_ids in ids.items():
        for token_id in token_ids:
            if token_id in seen and seen[token_id] != label:
                raise ValueError(f"labels '{seen[token_id]}' and '{label}' share first token {token_id}")
            seen[token_id] = label
    return ids


def label_logprobs(tokenizer: Any, logprobs: torch.Tensor, labels: tuple[str, ...]) -> dict[str, float]:
    """log P(label) from one position's ``(vocab,)`` log-probabilities: summed over the label's spellings."""
    ids = option_token_ids(tokenizer, labels)
    return {label: float(torch.logsumexp(logprobs[list(t)], dim=0)) for label, t in ids.items()}


def encode_batch(loaded: LoadedModel, requests: list[Request]) -> dict[str, torch.Tensor]:
    """Tokenise a batch (left-padded) with its images. The processors take the batch's images as one flat list
    and hand them to the prompts' image placeholders in order, so an item's several images stay with it."""
    with_image = [bool(r.images) for r in requests]
    if any(with_image) and not all(with_image):
        raise ValueError("a batch mixes requests with and without an image; batch them separately")
    images = {"images": [image for r in requests for image in r.images]} if all(with_image) else {}
    inputs = loaded.processor(text=[r.prompt for r in requests], return_tensors="pt", padding=True, **images)
    return {
        k: v.to(loaded.device, loaded.dtype) if v.is_floating_point() else v.to(loaded.device)
        for k, v in inputs.items()
    }


@torch.inference_mode()
def generate_batch(loaded: LoadedModel, requests: list[Request], max_new_tokens: int) -> list[Response]:
    """Greedy answers with the option labels' log-probs at the first answer token; ``max_new_tokens`` 0:
    :func:`margin_batch`."""
    if max_new_tokens == 0:
        return margin_batch(loaded, requests)
    inputs = encode_batch(loaded, requests)
    tokenizer = loaded.tokenizer
    output = loaded.model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    prompt_length = inputs["input_ids"].shape[1]
    texts = tokenizer.batch_decode(output.sequences[:, prompt_length:], skip_special_tokens=True)
    first_step = torch.log_softmax(output.logits[0].float(), dim=-1).cpu()
    first_tokens = output.sequences[:, prompt_length].tolist()
    responses = []
    for row, (request, text) in enumerate(zip(requests, texts, strict=True)):
        logprobs, is_label = None, None
        if request.labels:
            logprobs = label_logprobs(tokenizer, first_step[row], request.labels)
            is_label = any(first_tokens[row] in t for t in option_token_ids(tokenizer, request.labels).values())
        responses.append(Response(text=text.strip(), option_logprobs=logprobs, first_token_is_label=is_label))
    return responses


MARGIN_ONLY_NOTE = "margin-only run (max_new_tokens: 0): an open question is not answered"


@torch.inference_mode()
def margin_batch(loaded: LoadedModel, requests: list[Request]) -> list[Response]:
    """A margin-only batch: one prefill, no generation. A request with option labels is answered by its most likely
    label at the first answer token (the same log-probs :func:`generate_batch` reports); one without is left
    unanswered (empty text)."""
    inputs = encode_batch(loaded, requests)
    logits = loaded.model(**inputs, logits_to_keep=1).logits[:, -1]
    first_step = torch.log_softmax(logits.float(), dim=-1).cpu()
    responses = []
    for row, request in enumerate(requests):
        if not request.labels:
            responses.append(Response(text="", option_logprobs=None, first_token_is_label=None))
            continue
        logprobs = label_logprobs(loaded.tokenizer, first_step[row], request.labels)
        responses.append(Response(text=max(logprobs, key=logprobs.__getitem__), option_logprobs=logprobs,
                                  first_token_is_label=True))  # fmt: skip
    return responses
