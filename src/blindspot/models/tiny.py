"""Tiny, randomly initialised Qwen2.5-VL and LLaVA-NeXT models that exercise the real transformers code paths.

``blindspot tiny-model --family qwen2_5_vl|llava_next --out DIR`` writes weights (safetensors), a tokenizer
trained offline with `tokenizers` (with the family's special tokens), the processor and a chat template modelled on
the family's official one. ``AutoProcessor`` and ``AutoModelForImageTextToText`` load the directory back.

The image-token count must agree between model and processor: for LLaVA-NeXT the CLIP tower adds a CLS token
(``num_additional_image_tokens=1``) that ``vision_feature_select_strategy="default"`` drops again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from blindspot.prompts import PROMPTS

Family = Literal["qwen2_5_vl", "llava_next"]

TOKENIZER_COLOURS = ("red", "green", "blue", "yellow")
TOKENIZER_SHAPES = ("circle", "square", "triangle")
"""Answer words the tiny tokenizers learn whole (the fixture benchmarks' colours and shapes)."""

# Modelled on Qwen2.5-VL-Instruct's template: default system prompt, image placeholder inside vision markers.
QWEN_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Modelled on llava-v1.6-mistral-7b-hf's template: [INST] <image>\n{text} [/INST]
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}[INST] "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %} [/INST]{% else %}{{ message['content'] if message['content'] is string else "
    "message['content'][0]['text'] }}</s>{% endif %}{% endfor %}"
)

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]


def training_corpus() -> list[str]:
    """Text the tiny tokenizers are trained on: prompt templates, chat roles, answer words. A fresh list per call,
    so building a second tokenizer in the same process cannot change the first one's vocabulary."""
    words = [
        *TOKENIZER_COLOURS,
        *TOKENIZER_SHAPES,
        "yes",
        "no",
        "horizontal",
        "vertical",
        "stripes",
        "object",
        "image",
        "colour",
        "color",
    ]
    lines = [
        "You are a helpful assistant. system user assistant",
        "What colour is the object? Are the stripes horizontal or vertical? Is there a circle in the image?",
        "The answer is A. B. C. D. E. 0 1 2 3 4 5 6 7 8 9 10 Hint: it is usually red.",
        " ".join(words),
        " ".join(f"{letter}. {word}" for letter, word in zip("ABCD", words, strict=False)),
    ]
    for template in PROMPTS.values():
        lines += [template.multiple_choice, template.yes_no, template.open, template.count]
    # Answer labels as whole words, often enough that " A", " yes", ... become single tokens, as in real vocabularies.
    labels = "A B C D E F yes no Yes No 0 1 2 3 4 5 6 7 8 9"
    return lines * 4 + [labels] * 50


def build_tokenizer(family: Family, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    if family == "qwen2_5_vl":
        tokenizer = Tokenizer(models.BPE(unk_token=None))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=QWEN_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(training_corpus(), trainer)
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            additional_special_tokens=QWEN_SPECIALS[1:],
            padding_side="left",
        )
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=LLAVA_SPECIALS, show_progress=False)
    tokenizer.train_from_iterator(training_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<image>"],
        padding_side="left",
    )


def _qwen(tokenizer: PreTrainedTokenizerFast, size: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": size["hidden"],
            "intermediate_size": 2 * size["hidden"],
            "num_hidden_layers": size["layers"],
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": size["vision_layers"],
            "hidden_size": size["hidden"],
            "intermediate_size": 2 * size["hidden"],
            "num_heads": 4,
            "out_hidden_size": size["hidden"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [size["vision_layers"] - 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 28 * 28, "longest_edge": 448 * 448}, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    return model, processor


def _llava(tokenizer: PreTrainedTokenizerFast, size: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in LLAVA_SPECIALS}
    crop, patch = 56, size["patch"]
    pinpoints = [[crop, crop], [crop, 2 * crop], [2 * crop, crop], [2 * crop, 2 * crop]]
    config = LlavaNextConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": size["hidden"],
            "intermediate_size": 2 * size["hidden"],
            "num_hidden_layers": size["vision_layers"],
            "num_attention_heads": 4,
            "image_size": crop,
            "patch_size": patch,
            "hidden_act": size["act"],
            "projection_dim": size["hidden"],
        },
        text_config={
            "model_type": "mistral",
            "vocab_size": len(tokenizer),
            "hidden_size": size["hidden"],
            "intermediate_size": 2 * size["hidden"],
            "num_hidden_layers": size["layers"],
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "sliding_window": None,
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<pad>"],
        },
        image_token_index=ids["<image>"],
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=(crop // patch) ** 2,
    )
    model = LlavaNextForConditionalGeneration(config)
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": crop}, crop_size={"height": crop, "width": crop}, image_grid_pinpoints=pinpoints
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    return model, processor


def build_tiny_model(
    family: Family,
    out: str | Path,
    *,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    vision_layers: int = 2,
    llava_patch: int = 14,
    llava_vision_act: str = "quick_gelu",
) -> Path:
    """Build, seed and save a tiny model of ``family`` to ``out``; returns ``out``. ``llava_patch``: the LLaVA-NeXT
    vision tower's patch size (its crops are 56 px: 14 gives 16 tokens per crop, 28 gives 4); ``llava_vision_act``:
    its MLP activation (CLIP's quick_gelu by default)."""
    out = Path(out)
    size: dict[str, Any] = {
        "hidden": hidden,
        "layers": layers,
        "vision_layers": vision_layers,
        "patch": llava_patch,
        "act": llava_vision_act,
    }
    tokenizer = build_tokenizer(family)
    torch.manual_seed(seed)
    model, processor = (_qwen if family == "qwen2_5_vl" else _llava)(tokenizer, size)
    model.generation_config.do_sample = False
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


def build_tiny_language_model(out: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """A tiny Qwen2 causal language model sharing the tiny Qwen2.5-VL's tokenizer and chat template: the base
    language model of a tiny VLM (``llm:`` in a model's config) for MMStar's S_t."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    tokenizer = build_tokenizer("qwen2_5_vl")
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.do_sample = False
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
