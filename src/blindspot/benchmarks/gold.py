"""Canonical gold answers: one spelling per answer type, so scoring compares like with like.

- multiple_choice: the option letter ("A", "B", ...), from a letter, a 0-based index or the option text;
- yes_no: "yes" / "no";
- count: the number in its shortest decimal form ("3", "2.5");
- open: the stripped text, with every reference answer kept in ``answers``.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from typing import Any

from blindspot.contracts.answers import LETTERS, AnswerType, format_number, parse_number
from blindspot.contracts.items import RejectedItem
from blindspot.errors import BlindspotError

_LETTER_RE = re.compile(r"^\(?\s*([A-Za-z])\s*[\).:]?$")
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def parse_options(value: Any) -> list[str] | None:
    """Options from a list, an array, or a JSON / Python-literal list string. Empty entries are dropped."""
    if _is_missing(value):
        return None
    if isinstance(value, str):
        text = value.strip()
        parsed: Any = None
        for loader in (json.loads, ast.literal_eval):
            try:
                parsed = loader(text)
                break
            except (ValueError, SyntaxError):
                continue
        if not isinstance(parsed, list | tuple):
            raise RejectedItem("bad_options", f"options string is not a list: {text[:60]!r}")
        value = parsed
    if not isinstance(value, list | tuple) and hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise RejectedItem("bad_options", f"options must be a list, got {type(value).__name__}")
    options = [str(v).strip() for v in value if not _is_missing(v)]
    return options or None


def _multiple_choice(answer: Any, options: list[str] | None, answer_format: str) -> str:
    if not options or len(options) < 2:
        raise RejectedItem("bad_options", "multiple-choice item needs at least 2 options")
    if len(options) > len(LETTERS):
        raise RejectedItem("bad_options", f"{len(options)} options is more than {len(LETTERS)} letters")
    n = len(options)
    text = str(answer).strip()
    letter_match = _LETTER_RE.match(text)
    by_letter = letter_match.group(1).upper() if letter_match else None
    if by_letter is not None and LETTERS.index(by_letter) >= n:
        by_letter = None
    by_index = None
    if isinstance(answer, int | float) and not isinstance(answer, bool) and float(answer).is_integer():
        by_index = LETTERS[int(answer)] if 0 <= int(answer) < n else None
    elif re.fullmatch(r"\d+", text):
        by_index = LETTERS[int(text)] if 0 <= int(text) < n else None
    folded = [o.casefold() for o in options]
    by_text = LETTERS[folded.index(text.casefold())] if text.casefold() in folded else None

    chosen = {"letter": by_letter, "index": by_index, "text": by_text}
    if answer_format != "auto":
        picked = chosen[answer_format]
        if picked is None:
            raise RejectedItem("bad_answer", f"answer {text!r} is not a valid {answer_format} for {n} options")
        return picked
    # An integer-typed column is an index, never a letter or option text; otherwise every reading must agree.
    integer = isinstance(answer, int) and not isinstance(answer, bool)
    found = {by_index} if integer else {by_letter, by_text, by_index}
    candidates = {c for c in found if c is not None}
    if not candidates:
        raise RejectedItem("bad_answer", f"answer {text!r} matches no letter, index or text of {n} options")
    if len(candidates) > 1:
        raise RejectedItem(
            "ambiguous_answer",
            f"answer {text!r} reads as options {sorted(candidates)}; set answer_format in the benchmark config",
        )
    return candidates.pop()


_OPTIONS_MARKER = re.compile(r"(?:^|\n|\s)(?:options|choices)\s*:\s*", re.I)
_OPTION_LABEL = re.compile(r"(?:^|(?<=[\s,;]))\(?([A-Z])\s*[):.]\s+")


def options_from_question(question: str) -> tuple[str, list[str]] | None:
    """Options written inside the question text, as MMStar ("Options: A: x, B: y") and V* ("(A) x\n(B) y")
    publish them: (the question without them, the options), or None where there are not two or more.

    The options start after the last "Options:" / "Choices:" marker, else at the first label "A"; labels are
    "A:", "A.", "A)" or "(A)", consecutive from A. Each option runs to the next label; the last one to the end of
    its line (an instruction after the options, "Answer with the option's letter...", is not part of it).
    Separators (", " or ";") and whitespace around each option are dropped."""
    markers = list(_OPTIONS_MARKER.finditer(question))
    start = markers[-1].end() if markers else None
    labels: list[re.Match[str]] = []
    for match in _OPTION_LABEL.finditer(question, start or 0):
        expected = LETTERS[len(labels)]
        if match.group(1) == expected:
            labels.append(match)
        elif labels:
            break
    if len(labels) < 2:
        return None
    options = []
    for index, match in enumerate(labels):
        end = labels[index + 1].start() if index + 1 < len(labels) else len(question)
        text = question[match.end() : end]
        if index + 1 == len(labels):
            text = text.split("\n", 1)[0]
        options.append(text.strip().rstrip(",;").strip())
    if not all(options):
        return None
    head = question[: markers[-1].start() if markers else labels[0].start()].strip()
    return head, options


def infer_answer_type(answer: Any, options: list[str] | None) -> AnswerType:
    """``answer_type: auto``: an item with options is multiple choice; a yes/no gold (yes, no, true, false, or a
    boolean) is yes/no; a number (digits or a number word) is a count; anything else is open."""
    if options:
        return "multiple_choice"
    polar = {"yes", "no", "true", "false"}
    if isinstance(answer, bool) or (isinstance(answer, str) and answer.strip().casefold().rstrip(".") in polar):
        return "yes_no"
    if isinstance(answer, int | float) or (isinstance(answer, str) and parse_number(answer) is not None):
        return "count"
    return "open"


class ReferenceLayoutError(BlindspotError):
    """A reference-answer column whose layout is not understood (one line, naming the column's config key)."""


def _reference(value: Any) -> Any:
    """One reference answer: a string, or a record with an ``answer`` field (VQA v2's published layout)."""
    if isinstance(value, dict):
        if "answer" not in value:
            raise ReferenceLayoutError(
                f"a reference answer is a record with fields {sorted(value)} but no 'answer'; map a column of "
                "answer strings or of records with an 'answer' field",
                key="benchmark.columns.answer",
            )
        return value["answer"]
    if isinstance(value, list | tuple):
        raise ReferenceLayoutError(
            "a reference answer is itself a list; map a column of answer strings or of records with an 'answer' field",
            key="benchmark.columns.answer",
        )
    return value


def canonical_gold(
    answer: Any, answer_type: AnswerType, options: list[str] | None, answer_format: str = "auto"
) -> tuple[str, list[str] | None]:
    """The canonical gold answer and, for multi-reference open answers, the list of references."""
    if hasattr(answer, "tolist") and not isinstance(answer, str):
        answer = answer.tolist()
    if _is_missing(answer) or (isinstance(answer, list) and not answer):
        raise RejectedItem("missing_answer", "missing answer")
    if answer_type == "multiple_choice":
        return _multiple_choice(answer, options, answer_format), None
    if isinstance(answer, dict):
        answer = _reference(answer)
    if isinstance(answer, list):
        answer = [_reference(a) for a in answer]
        references = [str(a).strip() for a in answer if not _is_missing(a)]
        if answer_type != "open":
            raise RejectedItem("bad_answer", f"a list of answers is only valid for open questions: {answer!r}")
        if not references:
            raise RejectedItem("missing_answer", "missing answer (empty reference list)")
        counts = Counter(references)
        best = max(counts.values())
        return next(r for r in references if counts[r] == best), references
    text = str(answer).strip()
    if answer_type == "yes_no":
        if isinstance(answer, bool):
            return ("yes" if answer else "no"), None
        folded = text.casefold().rstrip(".")
        if folded in _YES:
            return "yes", None
        if folded in _NO:
            return "no", None
        raise RejectedItem("bad_answer", f"yes/no answer {text!r} is neither yes nor no")
    if answer_type == "count":
        number = parse_number(text)
        if number is None:
            raise RejectedItem("bad_answer", f"count answer {text!r} is not a number")
        return format_number(number), None
    return text, None
