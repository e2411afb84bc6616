"""The one base error of every stage: a problem a user can fix, with the config key it concerns.

``str(error)`` is one line, ``key: message`` (or the message alone where no key applies). Keys are relative to the
stage's config slice (``model.path``, ``predict.conditions``); the CLI turns them into the user's config keys
(``models.qwen.path``) before printing.
"""

from __future__ import annotations


class BlindspotError(Exception):
    """A one-line, user-fixable problem, naming the config key (if any) it concerns."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class InputError(BlindspotError):
    """An input file or store is missing, damaged or inconsistent with the slice."""
