"""The package's shape: every stage under ``stages/``, every store under ``store/``, imports that run downward.

The tree shows the architecture. ``stages/`` holds the stage table and one module or package per stage;
``store/`` holds how outputs are written, read and verified. A stage never imports another stage, the storage layer
never imports a stage or a model, and no top-level part imports a part of a higher layer (:data:`LAYERS`).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from blindspot.stages.table import STAGES

PACKAGE = REPO / "src" / "blindspot"
STAGE_MODULES = {stage.runner.partition(":")[0] for stage in STAGES.values()}
AGGREGATE_MODULE = "blindspot.stages.aggregate.run"
"""The aggregate is a stage outside the table (no wildcards; it reads every job's outputs: its ``layout`` module)."""
STAGE_INFRASTRUCTURE = {"blindspot.stages", "blindspot.stages.table", "blindspot.stages.slices"}
"""The modules of ``stages/`` that are not a stage: the package, the stage table and the slices."""
FOUNDATION = ("blindspot.contracts", "blindspot.errors", "blindspot.config_base", "blindspot.hub_cache")
"""Modules every layer may use; they import nothing of blindspot's but each other."""

LAYERS: dict[str, int] = {
    # 0: the foundation: the package's version, errors, the shared vocabulary, config basics
    "__init__": 0,
    "errors": 0,
    "contracts": 0,
    "hub_cache": 0,
    "config_base": 0,
    # 1: libraries: prompts, images, statistics, reading answers, benchmark adapters, the config
    "prompts": 1,
    "images": 1,
    "statistics": 1,
    "answers": 1,
    "benchmarks": 1,
    "config": 1,
    "fixtures": 1,
    "peak_memory": 1,
    "progress": 1,
    "conda_env": 1,
    # 2: how outputs are written, read and verified
    "store": 2,
    # 3: loading and running models
    "models": 3,
    # 4: the pipeline
    "stages": 4,
    # 5: the toy world (its calibration reads the stages' outputs)
    "toy": 5,
    # 6: the command line
    "cli": 6,
    "__main__": 6,
}
"""Each top-level file or folder of the package and its layer: a part imports only parts of its layer or below."""


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Every blindspot module -> the blindspot modules it imports (at top level or inside functions)."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
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


def part(module: str) -> str:
    """The top-level file or folder of the package a module belongs to (``blindspot.stages.decay`` -> ``stages``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def stage_unit(module: str) -> str | None:
    """The stage a module of ``stages/`` belongs to (``blindspot.stages.render.families`` -> ``render``); None for
    the stage table, the slices and the package itself."""
    if module in STAGE_INFRASTRUCTURE or not module.startswith("blindspot.stages."):
        return None
    return module.split(".")[2]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} (layer {LAYERS[part(module)]}) imports {target} (layer {LAYERS[part(target)]})"
        for module, targets in graph.items()
        for target in targets
        if LAYERS[part(target)] > LAYERS[part(module)]
    )


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_every_stage_lives_in_stages() -> None:
    """Each stage's runner is a module of ``stages/`` (one module, or one package for a stage of several)."""
    graph = import_graph()
    runners = {*STAGE_MODULES, AGGREGATE_MODULE}
    assert set(graph) >= runners, runners - set(graph)
    outside = sorted(m for m in runners if stage_unit(m) is None)
    assert not outside, f"stage runners outside stages/: {outside}"
    assert len({stage_unit(m) for m in runners}) == len(runners), "two stages share one module or package of stages/"


def test_stages_holds_only_stages_and_the_table() -> None:
    """A module in ``stages/`` belongs to a stage of the table; a shared library there would hide as a stage."""
    units = {stage_unit(m) for m in {*STAGE_MODULES, AGGREGATE_MODULE}}
    strays = sorted(m for m in import_graph() if stage_unit(m) is not None and stage_unit(m) not in units)
    assert not strays, f"modules in stages/ that belong to no stage of the table: {strays}"


def test_no_stage_imports_another() -> None:
    graph = import_graph()
    for module in graph:
        unit = stage_unit(module)
        if unit is None:
            continue
        others = {t for t in reachable(graph, module) if stage_unit(t) not in (None, unit)}
        assert not others, f"{module} (stage {unit}) imports another stage: {sorted(others)}"


def test_the_store_imports_no_stage_and_no_model() -> None:
    graph = import_graph()
    stores = [m for m in graph if part(m) == "store"]
    assert {"blindspot.store.tables", "blindspot.store.render", "blindspot.store.hidden"} <= set(stores)
    for module in stores:
        above = sorted(t for t in reachable(graph, module) if part(t) in ("stages", "models"))
        assert not above, f"{module} imports {above}"


def test_every_part_has_a_layer_and_imports_run_downward() -> None:
    graph = import_graph()
    unplaced = sorted({part(m) for m in graph} - set(LAYERS))
    assert not unplaced, f"top-level parts with no layer in LAYERS (place them): {unplaced}"
    assert layer_violations(graph) == []


def test_the_stage_table_and_the_config_import_no_stage_module() -> None:
    """Building the DAG (config, slices, commands) must not import a stage's runner (and torch with it)."""
    graph = import_graph()
    for module in ("blindspot.stages", "blindspot.stages.table", "blindspot.stages.slices", "blindspot.config"):
        assert not {t for t in reachable(graph, module) if stage_unit(t) is not None}, module
        assert "blindspot.models.loading" not in reachable(graph, module)


def test_the_foundation_imports_nothing_above_it() -> None:
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith(FOUNDATION):
            above = {t for t in targets if not t.startswith(FOUNDATION)}
            assert not above, f"{module} imports {sorted(above)}"


def test_the_checker_sees_imports_inside_functions() -> None:
    """The graph would be worthless if it missed the lazy imports the CLI uses."""
    graph = import_graph()
    assert "blindspot.toy.calibrate" in graph["blindspot.cli"]
    assert "blindspot.stages.table" in graph["blindspot.stages.predict"]


@pytest.mark.parametrize(
    ("module", "line", "rule"),
    [
        ("store/tables.py", "from blindspot.stages.table import STAGES\n", "store imports a stage"),
        ("store/render.py", "from blindspot.models.loading import LoadedModel\n", "store imports a model"),
        ("stages/decay.py", "from blindspot.stages.probe import run as probe\n", "a stage imports another"),
        ("config.py", "from blindspot.store.tables import read_frame\n", "a library imports the store"),
    ],
)
def test_the_checks_catch_a_planted_violation(tmp_path: Path, module: str, line: str, rule: str) -> None:
    """Each rule above fails on a copy of the package with one import that breaks it."""
    copy = tmp_path / "blindspot"
    shutil.copytree(PACKAGE, copy)
    target = copy / module
    target.write_text(line + target.read_text())
    graph = import_graph(copy)
    broken = layer_violations(graph) or [
        m for m in graph if stage_unit(m) and any(stage_unit(t) not in (None, stage_unit(m)) for t in graph[m])
    ]
    assert broken, rule
