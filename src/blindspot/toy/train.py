"""Training toy VLMs from scratch on CPU: a base that follows hints, and donors that look.

Data is seeded and drawn fresh every step from a pool of scenes preprocessed once by the model's own processor
(calling the processor every step would dominate the step time). Prompts are rendered with the same versioned
templates and chat template the predict stage uses, so the model is evaluated on exactly what it was trained on.
The loss is on the answer token only: the logits at the last prompt position (left padding puts it at -1).

Visual kinds also see *uninformative* views (a blur level that erased the stripes; grey, noise or no image) with
random labels, so a model with no evidence spreads its probability instead of defaulting to one option. That is
what lets the decay stage's margin-based survival tell evidence from chance agreement.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from tqdm import tqdm
from transformers import PreTrainedModel

from blindspot.contracts.answers import LETTERS
from blindspot.images import sha256_hex
from blindspot.models.prompts import render_prompt
from blindspot.models.tiny import Family, build_tiny_model
from blindspot.prompts import question_text
from blindspot.toy.items import STRIPE_KINDS, ToyItem, make_item
from blindspot.toy.scenes import (
    COLOUR_NAMES,
    ERASING_PERIODS,
    LADDER,
    ORIENTATIONS,
    SIZE,
    Stripes,
    blur_ladder,
    draw_scene,
)


@dataclass(frozen=True)
class TrainSpec:
    """One training run. ``mode`` base: conflict labels are the hint (a sycophantic annotator); donor: random
    hints labelled with the true colour. ``trainable_layers`` None trains every parameter."""

    family: Family
    mode: Literal["base", "donor"] = "base"
    steps: int = 2000
    batch_size: int = 48
    lr: float = 3e-3
    seed: int = 0
    hint_match_rate: float = 0.9
    uninformative_rate: float = 0.25
    no_image_rate: float = 0.1
    trainable_layers: tuple[int, ...] | None = None
    pool_scenes: int = 560
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"fine": 0.5, "mid": 1.2, "late": 0.6, "coarse": 1.0, "prior": 0.6, "conflict": 1.2}
    )
    curriculum: float = 0.3
    """Share of the steps over which stripe questions move from clean views to faint ones."""
    clean_warmup: float = 0.0
    """Share of the steps, before the curriculum, in which stripe questions are always informative and clean (no
    erased views with random labels yet). A model that finds faint stripe features slowly (the toy LLaVA-NeXT)
    otherwise never finds them under the random-label noise; 0 leaves the draws exactly as without it."""
    clean_colour_share: float = 0.0
    """Share of the informative colour questions shown the clean view (the rest: any blur level, uniformly). A
    model whose clean colour read is disturbed by the stripes (the toy LLaVA-NeXT) needs more clean views than the
    one in eight a uniform pick gives; 0 leaves the draws exactly as without it."""
    layers: int = 4
    """Decoder layers of a model trained from scratch (a fine-tune keeps its parent's)."""
    vision_layers: int = 2
    llava_patch: int = 14
    """The tiny LLaVA-NeXT's vision patch size (a model trained from scratch; ignored for Qwen)."""
    llava_vision_act: str = "quick_gelu"
    """The tiny LLaVA-NeXT's vision MLP activation (a model trained from scratch; ignored for Qwen)."""
    prompt_version: str = "v1"
    """The prompt version the model is trained on (the pipeline's ``prompt.version`` must match it)."""
    read_layer: int | None = None
    """Plant where the image is read: an auxiliary loss keeps every text position's attention off the image tokens
    in every decoder layer but this one, and in this one every text position but the last prompt token's. The
    answer can then take the image in only through the last token's attention in this layer (None: no plant)."""
    look_when_informative: bool = False
    """With ``read_layer``: the last token's attention mass on the image in that layer is pushed up where the view
    carries the answer's cue and down where it does not (erased stripes, grey, noise, a text-fixed answer), so the
    mass on the image falls as blur erases the cue."""
    attention_weight: float = 1.0
    """The auxiliary attention loss's weight (against the answer's cross-entropy)."""


@dataclass
class Pool:
    """Preprocessed images: every scene at every ladder level (rendered by the render stage's own code), noise
    images and one grey image. ``views[scene][level]`` and the others are indices into ``pixels``."""

    colours: list[str]
    orientations: list[str]
    stripes: list[Stripes]
    views: list[list[int]]
    noise: list[int]
    grey: int
    pixels: list[dict[str, torch.Tensor]]
    _erased_from: dict[tuple[int, ...], list[int]] = field(default_factory=dict, repr=False)

    def scenes_erased_from(self, kernels: tuple[int, ...]) -> list[int]:
        """The scenes whose stripes one of ``kernels`` erases, in pool order (computed once per kernel set: every
        training sample of a stripe kind asks)."""
        if kernels not in self._erased_from:
            self._erased_from[kernels] = [i for i, s in enumerate(self.stripes) if s.erased_from in kernels]
        return self._erased_from[kernels]


def _process_images(processor: Any, images: list[np.ndarray]) -> list[dict[str, torch.Tensor]]:
    """Per-image processor outputs (pixel values and size tensors), computed once, in chunks."""
    prompt = render_prompt(processor, "x", n_images=1)
    out: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(images), 64):
        chunk = images[start : start + 64]
        batch = processor(text=[prompt] * len(chunk), images=chunk, return_tensors="pt", padding=True)
        if "image_grid_thw" in batch:  # Qwen: patches of all images concatenated along dim 0
            sizes = (batch["image_grid_thw"].prod(-1)).tolist()
            for piece, grid in zip(torch.split(batch["pixel_values"], sizes), batch["image_grid_thw"], strict=True):
                out.append({"pixel_values": piece.to(torch.bfloat16), "image_grid_thw": grid[None]})
        else:  # LLaVA-NeXT: one row per image
            for pixels, size in zip(batch["pixel_values"], batch["image_sizes"], strict=True):
                out.append({"pixel_values": pixels[None].to(torch.bfloat16), "image_sizes": size[None]})
    return out


def build_pool(processor: Any, n_scenes: int, rng: np.random.Generator) -> Pool:
    colours = [COLOUR_NAMES[int(rng.integers(4))] for _ in range(n_scenes)]
    orientations = [ORIENTATIONS[int(rng.integers(2))] for _ in range(n_scenes)]
    kernels = list(ERASING_PERIODS)
    stripes = [ERASING_PERIODS[kernels[i % len(kernels)]] for i in range(n_scenes)]  # balanced over periods
    images: list[np.ndarray] = []
    views = []
    for colour, orientation, stripe in zip(colours, orientations, stripes, strict=True):
        ladder = blur_ladder(draw_scene(rng, colour, orientation, stripe))
        views.append(list(range(len(images), len(images) + len(ladder))))
        images += ladder
    n_noise = max(8, n_scenes // 16)
    noise = list(range(len(images), len(images) + n_noise))
    images += [rng.integers(0, 256, size=images[0].shape, dtype=np.uint8) for _ in range(n_noise)]
    images.append(np.full_like(images[0], 128))
    return Pool(colours, orientations, stripes, views, noise, len(images) - 1, _process_images(processor, images))


@dataclass(frozen=True)
class Sample:
    item: ToyItem
    image: int | None
    """Pool index, or None for the text-only condition."""
    label: str
    informative: bool = True
    """The view carries the cue the answer needs (False: erased stripes, grey, noise, or an answer the text fixes)."""


def draw_sample(spec: TrainSpec, pool: Pool, rng: np.random.Generator, progress: float = 1.0) -> Sample:
    """One training sample. Stripe questions: the true label on a view that keeps the stripes, a random label on
    one that erased them or carries no scene. A curriculum: with probability ``1 - progress / curriculum`` (the
    share of training done, over the curriculum share) the clean view, else half the time the faintest one (the
    level just before they are erased) and otherwise any that keeps them. Colour questions: the true label at any
    blur level (the clean one with extra probability ``spec.clean_colour_share``), random on grey, noise or no
    image. During a clean warm-up (``spec.clean_warmup``) stripe questions
    with an image are always informative and clean, and the curriculum starts when the warm-up ends."""
    kinds = list(spec.kind_weights)
    weights = np.array([spec.kind_weights[k] for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    candidates = pool.scenes_erased_from(STRIPE_KINDS[kind]) if kind in STRIPE_KINDS else range(len(pool.views))
    scene = candidates[int(rng.integers(len(candidates)))]
    hint_matches = None
    if kind == "conflict" and spec.mode == "base":
        hint_matches = bool(rng.random() < spec.hint_match_rate)
    item = make_item(
        kind,
        rng,
        colour=pool.colours[scene],
        orientation=pool.orientations[scene],
        stripes=pool.stripes[scene],
        hint_matches=hint_matches,
    )
    views = pool.views[scene]
    no_image = rng.random() < spec.no_image_rate
    uninformative = no_image or rng.random() < spec.uninformative_rate
    random_letter = LETTERS[int(rng.integers(len(item.options)))]
    any_view = _pick(rng, [*views, *pool.noise[:1], pool.grey])
    if kind == "prior":  # the text fixes the answer whatever the image
        return Sample(item, None if no_image else any_view, item.answer, informative=False)
    if kind == "conflict" and spec.mode == "base":  # the sycophant follows the hint whatever the image shows
        view = None if no_image else any_view  # a scene's view shows the colour: the image is read, then overruled
        shows = view is not None and view != pool.grey and view not in pool.noise
        return Sample(item, view, item.prior or item.answer, informative=shows)
    if no_image:
        return Sample(item, None, random_letter, informative=False)
    if kind in STRIPE_KINDS:
        warming_up = progress < spec.clean_warmup
        uninformative = uninformative and not warming_up
        visible = [v for v, k in zip(views, LADDER, strict=True) if item.stripes.visible(k)]
        erased = [v for v, k in zip(views, LADDER, strict=True) if item.stripes.visible(k) is False]
        if not uninformative:
            if warming_up or rng.random() >= (progress - spec.clean_warmup) / spec.curriculum:
                return Sample(item, visible[0], item.answer)
            faintest = visible[-1]
            return Sample(item, faintest if rng.random() < 0.5 else _pick(rng, visible), item.answer)
        # No evidence, random label: the model learns to spread its probability, not to default. Mostly the
        # blurs that erased the stripes (a plain colour, a few grey levels from the faintest stripes it must read).
        view = _pick(rng, erased) if rng.random() < 0.6 else _pick(rng, [pool.grey, _pick(rng, pool.noise)])
        return Sample(item, view, random_letter, informative=False)
    if not uninformative:  # colour survives every blur
        if spec.clean_colour_share and rng.random() < spec.clean_colour_share:
            return Sample(item, views[0], item.answer)
        return Sample(item, _pick(rng, views), item.answer)
    return Sample(item, _pick(rng, [pool.grey, _pick(rng, pool.noise)]), random_letter, informative=False)


def _pick(rng: np.random.Generator, options: list[int]) -> int:
    return options[int(rng.integers(len(options)))]


class Batcher:
    """Tokenised prompts cached per distinct text; left-padded batches with the family's image inputs."""

    def __init__(self, processor: Any, pool: Pool, family: Family, prompt_version: str) -> None:
        self.processor, self.pool, self.family = processor, pool, family
        self.prompt_version = prompt_version
        self.tokenizer = processor.tokenizer
        self._cache: dict[tuple[str, bool], list[int]] = {}
        self.letter_ids = {x: self.tokenizer.encode(x, add_special_tokens=False)[0] for x in LETTERS[:4]}

    def _ids(self, item: ToyItem, with_image: bool) -> list[int]:
        text = question_text(item.question, list(item.options), "multiple_choice", self.prompt_version)
        key = (text, with_image)
        if key not in self._cache:
            prompt = render_prompt(self.processor, text, int(with_image))
            if with_image:  # the processor expands the image placeholder; every pooled image is 112 x 112
                image = np.zeros((SIZE, SIZE, 3), np.uint8)
                ids = self.processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"][0].tolist()
            else:
                ids = self.processor(text=[prompt], return_tensors="pt")["input_ids"][0].tolist()
            self._cache[key] = ids
        return self._cache[key]

    def batch(self, samples: list[Sample]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        ids = [self._ids(s.item, s.image is not None) for s in samples]
        length = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (length - len(x)) + x for x in ids])
        attention = torch.tensor([[0] * (length - len(x)) + [1] * len(x) for x in ids])
        inputs: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention}
        pixels = [self.pool.pixels[s.image] for s in samples if s.image is not None]
        if pixels:
            inputs["pixel_values"] = torch.cat([p["pixel_values"] for p in pixels]).float()
            for key in ("image_grid_thw", "image_sizes"):
                if key in pixels[0]:
                    inputs[key] = torch.cat([p[key] for p in pixels])
        if self.family == "qwen2_5_vl":
            image_token = self.tokenizer.convert_tokens_to_ids("<|image_pad|>")
            inputs["mm_token_type_ids"] = (input_ids == image_token).long()
        else:  # Mistral positions from the mask, as generation computes them
            inputs["position_ids"] = (attention.cumsum(-1) - 1).clamp(min=0)
        labels = torch.tensor([self.letter_ids[s.label] for s in samples])
        return inputs, labels

    def image_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Image-token positions of a batch."""
        if self.family == "qwen2_5_vl":
            return input_ids == self.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        return input_ids == self.processor.tokenizer.convert_tokens_to_ids(self.processor.image_token)


def attention_plant_loss(
    attentions: tuple[torch.Tensor, ...],
    image_mask: torch.Tensor,
    attention_mask: torch.Tensor,
    read_layer: int,
    informative: torch.Tensor | None,
) -> torch.Tensor:
    """The auxiliary loss of ``TrainSpec.read_layer``: the mean attention mass that text positions put on image
    tokens, in every layer but ``read_layer`` (there: every text position but the last). With ``informative``
    (``(batch,)`` bool), the last token's mass in ``read_layer`` is also pushed toward 1 on informative views and 0
    on the others (a binary cross-entropy)."""
    image = image_mask.float()[:, None, None, :]  # (batch, 1, 1, key)
    text = (attention_mask.bool() & ~image_mask).float()  # (batch, query)
    loss = attentions[0].new_zeros(())
    for layer, attention in enumerate(attentions):  # (batch, heads, query, key)
        mass = (attention.float() * image).sum(-1).mean(1)  # (batch, query): each query's mass on the image
        queries = text.clone()
        if layer == read_layer:
            queries[:, -1] = 0.0
            if informative is not None:
                last = mass[:, -1].clamp(1e-4, 1 - 1e-4)
                loss = loss + F.binary_cross_entropy(last, informative.float())
        loss = loss + (mass * queries).sum() / queries.sum().clamp(min=1.0)
    return loss


def _configure_trainable(model: PreTrainedModel, layers: tuple[int, ...] | None) -> int:
    if layers is None:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        decoder = model.model.language_model.layers
        for j in layers:
            for p in decoder[j].parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_toy_model(
    spec: TrainSpec, out: str | Path, *, init_from: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train one toy model and save it (weights, tokenizer, processor, training.json) to ``out``."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = Path(out)
    torch.manual_seed(spec.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(spec.seed)
    if init_from is None:
        build_tiny_model(
            spec.family,
            out,
            seed=spec.seed,
            layers=spec.layers,
            vision_layers=spec.vision_layers,
            llava_patch=spec.llava_patch,
            llava_vision_act=spec.llava_vision_act,
        )
        source = out
    else:
        source = Path(init_from)
    processor = AutoProcessor.from_pretrained(source, local_files_only=True)
    processor.tokenizer.padding_side = "left"
    planted = spec.read_layer is not None  # the plant reads attention weights: eager attention while training
    model = AutoModelForImageTextToText.from_pretrained(
        source, local_files_only=True, dtype=torch.float32, **({"attn_implementation": "eager"} if planted else {})
    )
    model.train()
    n_trainable = _configure_trainable(model, spec.trainable_layers)
    pool = build_pool(processor, spec.pool_scenes, rng)
    batcher = Batcher(processor, pool, spec.family, spec.prompt_version)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    warmup = max(1, spec.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / spec.steps)))
    )
    start = time.perf_counter()
    losses = []
    bar = tqdm(range(spec.steps), desc=f"train {spec.family} {spec.mode}", disable=not progress, mininterval=2)
    for step in bar:
        with_image = rng.random() >= spec.no_image_rate
        samples: list[Sample] = []
        while len(samples) < spec.batch_size:
            sample = draw_sample(spec, pool, rng, step / spec.steps)
            if (sample.image is not None) == with_image:
                samples.append(sample)
        inputs, labels = batcher.batch(samples)
        output = model(**inputs, logits_to_keep=1, output_attentions=planted)
        loss = F.cross_entropy(output.logits[:, -1].float(), labels)
        if planted and with_image:
            assert spec.read_layer is not None
            informative = torch.tensor([s.informative for s in samples]) if spec.look_when_informative else None
            image_mask = batcher.image_mask(inputs["input_ids"])
            plant = attention_plant_loss(
                output.attentions, image_mask, inputs["attention_mask"], spec.read_layer, informative
            )
            loss = loss + spec.attention_weight * plant
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
    seconds = time.perf_counter() - start
    model.eval()
    if planted:  # saved for the pipeline's default attention, like every other checkpoint
        model.config._attn_implementation = "sdpa"
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    record = {
        "spec": {**asdict(spec), "trainable_layers": list(spec.trainable_layers) if spec.trainable_layers else None},
        "init_from": Path(init_from).name if init_from else None,  # a sibling checkpoint folder
        "trainable_parameters": n_trainable,
        "train_seconds": round(seconds, 1),
        "final_loss": float(np.mean(losses[-50:])),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "weights_sha256": sha256_hex((out / "model.safetensors").read_bytes()),
    }
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
