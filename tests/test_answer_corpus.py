"""The reading of realistic model outputs against a careful person's reading (tests/data/answer_corpus.yaml).

Every case must agree: the answer (or unparsed / abstain) and, where the case says, the hedged flag. The test
prints the agreement rate per answer type and names every disagreement.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from blindspot.answers import parse_answer

CORPUS = Path(__file__).parent / "data" / "answer_corpus.yaml"


def load() -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    data = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    return data["option_sets"], data["cases"]


def reading(case: dict[str, Any], option_sets: dict[str, list[str]]) -> tuple[str, bool]:
    options = option_sets[case["options"]] if "options" in case else None
    parsed = parse_answer(case["text"], case["type"], options, case.get("question", ""))
    return (parsed.answer if parsed.status == "parsed" else parsed.status), parsed.hedged


CATEGORIES = {"self_correction", "rules_out", "commits_hedged", "comparison", "yes_no_other"}
"""Round 3's categories (issue 28): each has cases written in several models' styles."""


def test_corpus_is_large_and_covers_every_type_and_benchmark_style() -> None:
    option_sets, cases = load()
    assert len(cases) >= 300
    assert {c["type"] for c in cases} == {"multiple_choice", "yes_no", "count", "open"}
    assert len({c["bench"] for c in cases}) >= 12
    assert all(c.get("options") in option_sets for c in cases if c["type"] == "multiple_choice")
    assert len({(c["type"], c["text"], c.get("options"), c.get("question")) for c in cases}) == len(cases)
    by_category = Counter(c["category"] for c in cases if "category" in c)
    assert set(by_category) == CATEGORIES and min(by_category.values()) >= 10, by_category
    assert sum(by_category.values()) >= 60
    # Each category also holds cases a careful person could not read: a wrong reading is worse than none.
    for category in CATEGORIES - {"rules_out"}:
        assert any(c.get("category") == category and c["expect"] == "unparsed" for c in cases), category


def agrees(case: dict[str, Any], answer: str, hedged: bool) -> bool:
    return answer == str(case["expect"]) and ("hedged" not in case or hedged == case["hedged"])


EARLIER = "earlier rounds"


def agreement(category: str | None = None) -> tuple[int, int, list[str]]:
    """(cases agreed, cases, disagreements) over the corpus or one category of it."""
    option_sets, cases = load()
    chosen = [c for c in cases if category is None or c.get("category", EARLIER) == category]
    wrong = []
    for case in chosen:
        answer, hedged = reading(case, option_sets)
        if not agrees(case, answer, hedged):
            wrong.append(
                f"{case['bench']} {case['type']}: {case['text']!r} -> {answer!r} (hedged {hedged}), "
                f"expected {case['expect']!r}" + (f" (hedged {case['hedged']})" if "hedged" in case else "")
            )
    return len(chosen) - len(wrong), len(chosen), wrong


@pytest.mark.parametrize("category", [EARLIER, *sorted(CATEGORIES)])
def test_every_case_reads_as_a_careful_person_reads_it(category: str) -> None:
    """One test per category, so that a category the reader stops reading fails by name."""
    agreed, total, wrong = agreement(category)
    print(f"category {category}: {agreed}/{total} agree")
    assert not wrong, "\n".join(wrong)


def test_the_agreement_per_answer_type_is_printed() -> None:
    option_sets, cases = load()
    per_type, agree = Counter(), Counter()
    for case in cases:
        answer, hedged = reading(case, option_sets)
        per_type[case["type"]] += 1
        agree[case["type"]] += agrees(case, answer, hedged)
    for kind, n in sorted(per_type.items()):
        print(f"{kind}: {agree[kind]}/{n} agree")
    print(f"all: {sum(agree.values())}/{len(cases)} agree ({100 * sum(agree.values()) / len(cases):.1f}%)")
    assert sum(per_type.values()) == len(cases)
