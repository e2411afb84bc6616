"""The docs stay true: excerpts match the code they quote, examples run, and nothing points outside the repo."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO

from blindspot.benchmarks import registry
from blindspot.images import encode_png
from blindspot.stages.staging import stage_benchmark, staged_paths

DOCS = sorted((REPO / "docs").glob("*.md"))
EXCERPT = re.compile(r"<!-- excerpt: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.S)
EXAMPLE = re.compile(r"<!-- example -->\n```python\n(?P<code>.*?)```", re.S)


def excerpts() -> list[tuple[str, str, str]]:
    return [(doc.name, m["path"], m["code"]) for doc in DOCS for m in EXCERPT.finditer(doc.read_text())]


def test_the_docs_quote_code() -> None:
    assert len(excerpts()) >= 5
    assert {"adding-a-stage.md", "adding-a-benchmark.md"} <= {doc for doc, _, _ in excerpts()}


@pytest.mark.parametrize(("doc", "path", "code"), excerpts(), ids=lambda v: v if len(v) < 40 else v[:40])
def test_every_excerpt_is_the_code_it_quotes(doc: str, path: str, code: str) -> None:
    assert code in (REPO / path).read_text(), f"{doc} quotes {path}, which no longer contains that code"


def test_the_benchmark_example_stages_a_benchmark(tmp_path: Path) -> None:
    (example,) = EXAMPLE.finditer((REPO / "docs" / "adding-a-benchmark.md").read_text())
    module = types.ModuleType("spot_the_dot_example")  # a real module, as the page says to write one
    sys.modules[module.__name__] = module
    try:
        exec(compile(example["code"], "adding-a-benchmark.md", "exec"), module.__dict__)
        spec = registry.get_benchmark("spot_the_dot")
        (tmp_path / "pics").mkdir()
        rows = []
        for i in range(4):
            image = f"pics/{i}.png"
            (tmp_path / image).write_bytes(encode_png(__import__("numpy").full((28, 28, 3), 40 * i, "uint8")))
            rows.append({"uid": i, "prompt": "Is there a red dot?", "label": i % 2, "picture": image})
        rows.append({"uid": 9, "prompt": "Is there a red dot?", "label": 7, "picture": "pics/0.png"})
        rows.append({"uid": 10, "prompt": "Is there a red dot?", "label": 1})  # no picture: a bad row
        source = tmp_path / "test.jsonl"
        source.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
        config = spec.config.model_validate({"adapter": "spot_the_dot", "path": str(source)})
        summary = stage_benchmark("dots", config, staged_paths(tmp_path / "staged"))
    finally:
        registry._REGISTRY.pop("spot_the_dot", None)
        sys.modules.pop(module.__name__, None)
    assert (summary.items, summary.rejects) == (4, 3)
    items = pl.read_parquet(tmp_path / "staged" / "items.parquet")
    assert items["answer"].to_list() == ["no", "yes", "no", "yes"]
    rejects = pl.read_parquet(tmp_path / "staged" / "rejects.parquet")
    assert sorted(rejects["reason"]) == ["bad_row", "malformed_row", "missing_answer"]


def test_nothing_points_outside_the_repository() -> None:
    texts = [REPO / "README.md", *DOCS, *(REPO / "src").rglob("*.py"), *(REPO / "config").rglob("*.yaml")]
    texts += [*(REPO / "rules").glob("*.smk"), REPO / "Snakefile", *(REPO / "tests").glob("*.py")]
    outside = re.compile(r"\.\./shared|METHOD\.md|BENCHMARKS\.md|DESIGN\.md|REFERENCES\.md")
    offenders = [str(p.relative_to(REPO)) for p in texts if p != Path(__file__) and outside.search(p.read_text())]
    assert offenders == []


def test_every_install_command_names_this_project() -> None:
    """`pip install blindspot` would install an unrelated project from the package index: every install command in
    the README, the docs, the example configs and the messages installs this checkout (or its distribution name)."""
    import re

    files = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "config").rglob("*.yaml"),
             *(REPO / "src" / "blindspot").rglob("*.py"), REPO / "Makefile"]  # fmt: skip
    commands = [(f.name, m.group(0)) for f in files for m in re.finditer(r"pip install[^\n`]*", f.read_text())]
    assert commands, "no install command found"
    wrong = [(name, c) for name, c in commands if re.search(r"pip install\s+(?:-U\s+)?['\"]?blindspot(?![-\w/])", c)]
    assert wrong == [], wrong
    toml = (REPO / "pyproject.toml").read_text()
    assert 'name = "blindspot-vlm"' in toml and 'blindspot = "blindspot.cli:main"' in toml


def test_every_mutant_is_listed_in_the_mutants_page_with_its_category() -> None:
    """docs/mutants.md's table names every mutant of tests/mutants.py, with the category the script prints."""
    source = (REPO / "tests" / "mutants.py").read_text()
    declared = dict(re.findall(r'Mutant\(\n\s+"([^"]+)",\n\s+"([^"]+)"', source))
    listed = dict(re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", (REPO / "docs" / "mutants.md").read_text(), re.M))
    assert len(declared) >= 90
    assert {m: c for m, c in declared.items() if listed.get(m) != c} == {}
