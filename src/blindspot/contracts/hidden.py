"""The vocabulary of hidden states: which features are captured, the layer convention, the token roles."""

from __future__ import annotations

FEATURES = ("last_token", "image_mean")
"""``last_token``: the state at the last prompt position; ``image_mean``: the mean over image-token positions."""

LAYER_CONVENTION = (
    "index 0 = embedding output (input of decoder layer 0, image features merged); index i in 1..L-1 = output "
    "of decoder layer i-1; index L = output of the last decoder layer after the final norm; "
    "as transformers output_hidden_states"
)

ROLE_PAD, ROLE_TEMPLATE, ROLE_IMAGE, ROLE_QUESTION = 0, 1, 2, 3
"""Token roles of the opt-in full token states."""

ATTENTION = ("attention_image", "attention_sink")
"""Per item, level, decoder layer and head: the last prompt token's attention mass on the image tokens other than
attention sinks, and on the sinks."""
MAX_SINKS = 16
"""Sink tokens named per item and level (the ones with the largest norms), in ``sink_token`` / ``sink_ratio``."""
