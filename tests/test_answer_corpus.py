"""The reading of realistic model outputs against a careful person's reading (tests/data/answer_corpus.yaml).

Every case must agree: the answer (or unparsed / abstain) and, where the case says, the hedged flag. The test
prints the agreement rate per answer type and names every disagreement.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

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


def test_corpus_is_large_and_covers_every_type_and_benchmark_style() -> None:
    option_sets, cases = load()
    assert len(cases) >= 300
    assert {c["type"] for c in cases} == {"multiple_choice", "yes_no", "count", "open"}
    assert len({c["bench"] for c in cases}) >= 12
    assert all(c.get("options") in option_sets for c in cases if c["type"] == "multiple_choice")
    assert len({(c["type"], c["text"], c.get("options"), c.get("question")) for c in cases}) == len(cases)


def test_every_case_reads_as_a_careful_person_reads_it() -> None:
    option_sets, cases = load()
    wrong, per_type, agree = [], Counter(), Counter()
    for case in cases:
        answer, hedged = reading(case, option_sets)
        ok = answer == str(case["expect"]) and ("hedged" not in case or hedged == case["hedged"])
        per_type[case["type"]] += 1
        agree[case["type"]] += ok
        if not ok:
            wrong.append(
                f"{case['bench']} {case['type']}: {case['text']!r} -> {answer!r} (hedged {hedged}), "
                f"expected {case['expect']!r}" + (f" (hedged {case['hedged']})" if "hedged" in case else "")
            )
    for kind, n in sorted(per_type.items()):
        print(f"{kind}: {agree[kind]}/{n} agree")
    print(f"all: {sum(agree.values())}/{len(cases)} agree ({100 * sum(agree.values()) / len(cases):.1f}%)")
    assert not wrong, "\n".join(wrong)
