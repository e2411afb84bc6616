"""Conditions: one (obfuscation family, level) pair, and the ``family/level`` keys that name them in config.

The blur ladder's level 0 is the clean working image itself; other families number their obfuscated levels from 1
and share blur level 0 as their clean reference. ``none`` (level 1) is the text-only condition: the same prompt
with no image (MMStar's S_wv). In config a negative level counts from the end of a family's ladder: ``blur/-1``
is the most severe blur level, whatever the ladder's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

CLEAN_FAMILY = "blur"
"""The family whose level 0 is the clean image."""
NONE_FAMILY = "none"
"""The text-only condition's family (no image at all)."""

KEY_PATTERN = re.compile(r"^(?P<family>[a-z][a-z0-9_]*)/(?P<level>-?\d+)$")


@dataclass(frozen=True)
class Condition:
    family: str
    level: int
    param: float
    """Kernel size (blur), block size (pixelate), 0 otherwise."""

    @property
    def key(self) -> str:
        return f"{self.family}/{self.level}"


NONE_CONDITION = Condition(NONE_FAMILY, 1, 0.0)
"""The text-only condition: the same prompt with no image at all."""
LLM_FAMILY = "llm"
LLM_CONDITION = Condition(LLM_FAMILY, 1, 0.0)
"""The same question answered by the model's base language model alone (MMStar's S_t)."""


class ConditionKey(NamedTuple):
    """A parsed ``family/level`` key; ``level`` may be negative (counted from the end of the ladder)."""

    family: str
    level: int

    def __str__(self) -> str:
        return f"{self.family}/{self.level}"


def parse_condition_key(key: str, *, allow_negative: bool = True) -> ConditionKey:
    """``"blur/-1"`` -> ``ConditionKey("blur", -1)``; ``"none"`` -> ``ConditionKey("none", 1)``.

    Raises ``ValueError`` with a message naming the key and the expected form."""
    if key == NONE_FAMILY:
        return ConditionKey(NONE_FAMILY, 1)
    match = KEY_PATTERN.match(key)
    if match is None:
        raise ValueError(f"condition '{key}' is not 'family/level' (e.g. blur/0, blur/-1) or 'none'")
    level = int(match["level"])
    if level < 0 and not allow_negative:
        raise ValueError(f"condition '{key}': a negative level is not allowed here")
    return ConditionKey(match["family"], level)


def resolve_condition_key(key: str, available: list[Condition]) -> Condition:
    """The stored condition a config key names; negative levels count from the end of that family's ladder.

    Raises ``KeyError`` with a message listing what is available."""
    family, level = parse_condition_key(key)
    ladder = sorted((c for c in available if c.family == family), key=lambda c: c.level)
    if level < 0:
        if -level > len(ladder):
            have = ", ".join(c.key for c in available)
            raise KeyError(f"'{key}': family '{family}' has {len(ladder)} level(s) (have: {have})")
        return ladder[level]
    for condition in ladder:
        if condition.level == level:
            return condition
    raise KeyError(f"'{key}' is not available (have: {', '.join(c.key for c in available)})")


def condition_label(family: str, level: int, param: float | None) -> str:
    """A condition named as a reader knows it: by its kernel or block size, not its level index
    ("clean", "blur k=25", "pixelate 8 px blocks", "blank", "no image", "language model")."""
    if family == CLEAN_FAMILY and level == 0:
        return "clean"
    if family == CLEAN_FAMILY and param is not None:
        return f"blur k={int(param)}"
    if family == "pixelate" and param is not None:
        return f"pixelate {int(param)} px blocks"
    if family == NONE_FAMILY:
        return "no image"
    if family == LLM_FAMILY:
        return "language model"
    return family if level == 1 else f"{family}/{level}"
