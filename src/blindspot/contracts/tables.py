"""Schemas of the tables stages pass to each other. One place, so a producer and its consumers cannot drift.

Every per-benchmark table carries a ``benchmark`` column and every per-(model, benchmark) table a ``model`` column
too, so later stages (aggregate, report) can stack and scan them without parsing paths.
"""

from __future__ import annotations

import pyarrow as pa

BENCHMARK_FIELD = pa.field("benchmark", pa.string(), nullable=False)
MODEL_FIELD = pa.field("model", pa.string(), nullable=False)


def _per_benchmark(*fields: pa.Field) -> pa.Schema:
    return pa.schema([BENCHMARK_FIELD, *fields])


def _per_model(*fields: pa.Field) -> pa.Schema:
    return pa.schema([MODEL_FIELD, BENCHMARK_FIELD, *fields])


# ------------------------------------------------------------------------------------------------ staging

ITEMS_SCHEMA = _per_benchmark(
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("question", pa.string(), nullable=False),
    pa.field("options", pa.list_(pa.string())),
    pa.field("answer", pa.string(), nullable=False),
    pa.field("answers", pa.list_(pa.string())),
    pa.field("answer_type", pa.string(), nullable=False),
    pa.field("image_keys", pa.list_(pa.string()), nullable=False),
    pa.field("widths", pa.list_(pa.int32()), nullable=False),
    pa.field("heights", pa.list_(pa.int32()), nullable=False),
    pa.field("source_index", pa.int64(), nullable=False),
    pa.field("metadata", pa.string(), nullable=False),
)
"""One row per staged item. ``options`` is null for open answers; ``answer`` is the canonical gold answer (an
option letter for multiple choice, ``yes``/``no``, a normalised number, or text); ``answers`` holds every reference
answer where there are several (TextVQA's ten). ``image_keys`` are the sha256 of each source image's bytes, in the
order the prompt shows them (one for most benchmarks, several for MMMU); ``widths``/``heights`` are the source
images' sizes in the same order. ``metadata`` is a JSON object of the source's other columns."""

REJECTS_SCHEMA = _per_benchmark(
    pa.field("source_index", pa.int64(), nullable=False),
    pa.field("item_id", pa.string()),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
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

# ------------------------------------------------------------------------------------------------ predict

PREDICTIONS_SCHEMA = _per_model(
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("family", pa.string(), nullable=False),
    pa.field("level", pa.int32(), nullable=False),
    pa.field("param", pa.float32(), nullable=False),
    pa.field("answer_type", pa.string(), nullable=False),
    pa.field("gold", pa.string(), nullable=False),
    pa.field("n_options", pa.int32()),
    pa.field("raw_text", pa.string(), nullable=False),
    pa.field("parsed", pa.string()),
    pa.field("outcome", pa.string(), nullable=False),
    pa.field("score", pa.float64(), nullable=False),
    pa.field("option_labels", pa.list_(pa.string())),
    pa.field("option_logprobs", pa.list_(pa.float64())),
    pa.field("scored", pa.string()),
    pa.field("first_token_is_label", pa.bool_()),
    pa.field("hedged", pa.bool_()),
    pa.field("score_official", pa.float64()),
    pa.field("note", pa.string()),
    pa.field("prompt", pa.string()),
)
"""One row per (item, condition). ``prompt``: the prompt as the model saw it (its chat template applied, one image
placeholder per image; without them under ``none``, the base language model's under ``llm``).
``first_token_is_label``: the first generated token spells an option label, so
the option log-probs describe the answer given (null for open answers). ``hedged``: an answer given beside a
refusal or a hedge. ``score``: the official scorer on the parsed (prefix-stripped) answer; ``score_official``: the
official scorer on the raw response (open answers only; null otherwise). ``note``: why an item was not run (a
prompt over ``max_prompt_tokens`` or the model's context), else null."""

# ------------------------------------------------------------------------------------------------ decay

DECAY_METRICS_SCHEMA = _per_model(
    pa.field("family", pa.string(), nullable=False),
    pa.field("level", pa.int32(), nullable=False),
    pa.field("param", pa.float32()),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("ci_low", pa.float64()),
    pa.field("ci_high", pa.float64()),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("note", pa.string()),
)
"""Long format. Summary rows have family ``all`` and level -1. ``note`` says why a metric is unavailable (null
value) or how it was judged."""

DECAY_ITEMS_SCHEMA = _per_model(
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("answer_type", pa.string(), nullable=False),
    pa.field("clean_answer", pa.string()),
    pa.field("clean_outcome", pa.string(), nullable=False),
    pa.field("judged_by", pa.string(), nullable=False),
    pa.field("consecutive_identical", pa.bool_()),
    pa.field("consecutive_margin", pa.bool_()),
    pa.field("first_lost_level", pa.int32()),  # first blur level losing the clean answer; null: none, or no firm one
    pa.field("class_identity", pa.string(), nullable=False),
    pa.field("class_margin", pa.string()),
    pa.field("class", pa.string(), nullable=False),
    pa.field("vision_indispensable", pa.bool_(), nullable=False),
)

# ------------------------------------------------------------------------------------------------ probe

PROBE_SKIPPED = "skipped"
"""The ``probe`` value of a row that reports a target the benchmark cannot support (its reason in ``note``)."""

PROBES_SCHEMA = _per_model(  # intervals: t intervals across the cross-validation folds
    pa.field("feature", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("probe", pa.string(), nullable=False),
    pa.field("level", pa.string(), nullable=False),
    pa.field("layer", pa.int32(), nullable=False),
    pa.field("subset", pa.string(), nullable=False),
    pa.field("accuracy", pa.float64()),
    pa.field("accuracy_ci_low", pa.float64()),
    pa.field("accuracy_ci_high", pa.float64()),
    pa.field("control_accuracy", pa.float64()),
    pa.field("selectivity", pa.float64()),
    pa.field("selectivity_ci_low", pa.float64()),
    pa.field("selectivity_ci_high", pa.float64()),
    pa.field("p_gold", pa.float64()),
    pa.field("p_prior", pa.float64()),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("n_classes", pa.int32(), nullable=False),
    pa.field("note", pa.string()),
)

# ------------------------------------------------------------------------------------------------ swap

PAIR_FIELD = pa.field("pair", pa.string(), nullable=False)


def interval_fields(metric: str) -> list[pa.Field]:
    """``metric`` with its ``_ci_low`` and ``_ci_high`` columns."""
    return [
        pa.field(metric, pa.float64()),
        pa.field(f"{metric}_ci_low", pa.float64()),
        pa.field(f"{metric}_ci_high", pa.float64()),
    ]


SWAP_ANSWERS_SCHEMA = pa.schema(
    [PAIR_FIELD, BENCHMARK_FIELD, pa.field("spec", pa.string(), nullable=False)]
    + [f for f in PREDICTIONS_SCHEMA if f.name not in ("model", "benchmark")]
)
"""One row per (spec, item, condition): what the hybrid answered, in the predictions schema."""

SWAP_SCHEMA = pa.schema(
    [
        PAIR_FIELD,
        BENCHMARK_FIELD,
        pa.field("base", pa.string(), nullable=False),
        pa.field("donor", pa.string(), nullable=False),
        pa.field("spec", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("layers", pa.list_(pa.int32()), nullable=False),
        pa.field("units", pa.list_(pa.string()), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("level", pa.int32(), nullable=False),
        pa.field("param", pa.float32(), nullable=False),
        pa.field("n", pa.int64(), nullable=False),
        pa.field("n_prior_differs", pa.int64(), nullable=False),
        *interval_fields("accuracy"),
        *interval_fields("flip_vs_base"),
        *interval_fields("flip_vs_donor"),
        *interval_fields("follow_prior"),
        *interval_fields("follow_image"),
        pa.field("note", pa.string()),
    ]
)
"""One row per (spec, condition). ``layers``: the decoder layers taken from the donor; ``units``: the named units
(``all`` for the ``donor`` reference, which takes every parameter). follow_prior / follow_image are over the
``n_prior_differs`` items whose prior answer differs from gold (null where there are none)."""

# ------------------------------------------------------------------------------------------------ patch

PATCH_ITEMS_SCHEMA = _per_model(
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("position", pa.string(), nullable=False),
    pa.field("layer", pa.int32(), nullable=False),
    pa.field("gold", pa.string(), nullable=False),
    pa.field("source_answer", pa.string(), nullable=False),
    pa.field("target_answer", pa.string(), nullable=False),
    pa.field("patched_answer", pa.string(), nullable=False),
    pa.field("ld_source", pa.float64()),
    pa.field("ld_target", pa.float64()),
    pa.field("ld_patched", pa.float64()),
    pa.field("restored", pa.float64()),
    pa.field("flipped", pa.bool_()),
)
"""One row per (item, source->target pair, position set, layer index). Answers are the top option label of each
run; ``ld_*``: log P(gold) - log P(target's top option); ``restored`` and ``flipped`` are null where the source
and target runs give the same answer."""

PATCHES_SCHEMA = _per_model(
    pa.field("source", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("position", pa.string(), nullable=False),
    pa.field("layer", pa.int32(), nullable=False),
    pa.field("n", pa.int64(), nullable=False),
    *interval_fields("ld"),
    *interval_fields("restored"),
    pa.field("n_restorable", pa.int64(), nullable=False),
    *interval_fields("flip_rate"),
    pa.field("n_flippable", pa.int64(), nullable=False),
    pa.field("method", pa.string(), nullable=False),
    pa.field("note", pa.string()),
)
"""One row per (pair, position set, layer index): means over items with cluster-bootstrap intervals; ``note``
says which items were left out (open answers, ``max_items``)."""

# ------------------------------------------------------------------------------------------------ lens

LENS_KINDS = ("logit", "tuned")
"""The lenses: the final norm and unembedding on a layer's state as it is (logit lens), and after that layer's
affine translator (tuned lens)."""

LENS_ITEMS_SCHEMA = _per_model(
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("level", pa.string(), nullable=False),
    pa.field("lens", pa.string(), nullable=False),
    pa.field("layer", pa.int32(), nullable=False),
    pa.field("gold", pa.string(), nullable=False),
    pa.field("prior", pa.string()),
    pa.field("final", pa.string(), nullable=False),
    pa.field("top", pa.string(), nullable=False),
    pa.field("margin_gold", pa.float64(), nullable=False),
    pa.field("margin_final", pa.float64(), nullable=False),
    pa.field("margin_gold_prior", pa.float64()),
)
"""One row per (item, condition, lens, residual point). Log-probabilities are over the item's option labels only
(the unembedding restricted to the option tokens). ``final``: the model's answer (the top option at the last
point); ``top``: the lens's top option at this point; ``margin_gold``: log P(gold) minus the best other option's;
``margin_final``: the same for the final answer; ``margin_gold_prior``: log P(gold) - log P(prior), where the
item's prior answer is known and differs from gold."""

LENS_SCHEMA = _per_model(
    pa.field("level", pa.string(), nullable=False),
    pa.field("lens", pa.string()),
    pa.field("layer", pa.int32(), nullable=False),
    pa.field("measure", pa.string(), nullable=False),
    *interval_fields("value"),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("note", pa.string()),
)
"""Long: one row per (condition, lens, point, measure), each a mean over items with a cluster-bootstrap interval.
Per point (``layer`` = residual point, 0 = embeddings): ``margin_gold``, ``margin_final``, ``margin_gold_prior``
(items whose prior differs from gold), ``top_gold``, ``top_final``, ``top_prior`` (shares). Per condition and lens
(``layer`` = -1): ``emergence`` (the first point from which the final answer stays on top, averaged),
``overtaken`` (the share of prior-differs items whose gold answer led at some point before the prior became the
final answer) and ``overtake_layer`` (the point where it did, averaged over those items). Attention (``lens``
null, ``layer`` = decoder layer): ``attention_image`` (the last prompt token's mass on the image tokens other than
sinks, mean over heads) and ``attention_sink`` (on the sinks); ``sink_tokens`` (``layer`` -1): image tokens per
item found to be sinks. A measure that could not be computed has a null value and its reason in ``note``."""

SINKS_SCHEMA = _per_model(
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("level", pa.string(), nullable=False),
    pa.field("image_token", pa.int32(), nullable=False),
    pa.field("norm_ratio", pa.float64(), nullable=False),
)
"""One row per attention-sink image token: its index among the item's image tokens and its largest residual norm
over the decoder layers, as a multiple of the median image-token norm at that layer."""

# ------------------------------------------------------------------------------------------------ knockout

KNOCKOUT_ITEMS_SCHEMA = _per_model(
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("condition", pa.string(), nullable=False),
    pa.field("position", pa.string(), nullable=False),
    pa.field("window_start", pa.int32(), nullable=False),
    pa.field("window_size", pa.int32(), nullable=False),
    pa.field("gold", pa.string(), nullable=False),
    pa.field("answer", pa.string(), nullable=False),
    pa.field("knocked_answer", pa.string(), nullable=False),
    pa.field("margin", pa.float64(), nullable=False),
    pa.field("knocked_margin", pa.float64(), nullable=False),
    pa.field("flipped", pa.bool_(), nullable=False),
)
"""One row per (item, condition, position set, window). ``answer``/``margin``: the unblocked run's top option and
its gold margin (log P(gold) minus the best other option's); ``knocked_*``: the same with attention from the
position set to the image tokens blocked in decoder layers ``window_start`` .. ``window_start + window_size - 1``;
``flipped``: the top option changed."""

KNOCKOUT_SCHEMA = _per_model(
    pa.field("condition", pa.string(), nullable=False),
    pa.field("position", pa.string(), nullable=False),
    pa.field("window_start", pa.int32(), nullable=False),
    pa.field("window_size", pa.int32(), nullable=False),
    pa.field("n", pa.int64(), nullable=False),
    *interval_fields("delta_margin"),
    *interval_fields("flip_rate"),
    *interval_fields("agree_no_image"),
    pa.field("note", pa.string()),
)
"""One row per (condition, position set, window): the mean change of the gold margin and the flip rate, with
cluster-bootstrap intervals. The window of every layer (``window_size`` = the model's layer count) is the image's
whole effect; for it ``agree_no_image`` is the share of items whose knocked answer equals the no-image prompt's
answer, and ``note`` says why the two need not be identical."""
