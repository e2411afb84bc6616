"""The package's shape: the import graph runs downward with no cycle, and stage modules never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

from blindspot.stages import STAGES

PACKAGE = REPO / "src" / "blindspot"
STAGE_MODULES = {stage.runner.partition(":")[0] for stage in STAGES.values()}
FOUNDATION = ("blindspot.contracts", "blindspot.errors", "blindspot.config_base", "blindspot.hub_cache")
"""Modules every layer may use; they import nothing of blindspot's but each other."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every blindspot module -> the blindspot modules it imports (at top level or inside functions)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("blindspot"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("blindspot")}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = list(graph[start])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(graph[node])
    return seen


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_no_stage_module_imports_another() -> None:
    graph = import_graph()
    assert set(graph) >= STAGE_MODULES, STAGE_MODULES - set(graph)
    for module in STAGE_MODULES:
        others = (reachable(graph, module) & STAGE_MODULES) - {module}
        assert not others, f"stage module {module} imports stage module(s) {sorted(others)}"


def test_the_stage_table_and_the_config_import_no_stage_module() -> None:
    """Building the DAG (config, slices, commands) must not import a stage's runner (and torch with it)."""
    graph = import_graph()
    for module in ("blindspot.stages", "blindspot.config"):
        assert not reachable(graph, module) & STAGE_MODULES, module
        assert "blindspot.models.loading" not in reachable(graph, module)


def test_the_foundation_imports_nothing_above_it() -> None:
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith(FOUNDATION):
            above = {t for t in targets if not t.startswith(FOUNDATION)}
            assert not above, f"{module} imports {sorted(above)}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The graph would be worthless if it missed the lazy imports the CLI uses."""
    graph = import_graph()
    assert "blindspot.toy.calibrate" in graph["blindspot.cli"]
    assert "blindspot.stages" in graph["blindspot.predict"]
