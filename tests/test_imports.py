"""The layering of `jaxrl57/` (DESIGN.md, "Architecture"), read from the source.

Every `import` statement counts, also those inside functions: a lazy import
still ties the two modules together.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jaxrl57"
# Layers below the runners: they must not know how they are driven or called.
LOWER = ("jaxrl57.losses", "jaxrl57.networks", "jaxrl57.replay", "jaxrl57.envs",
         "jaxrl57.agents", "jaxrl57.exploration", "jaxrl57.intrinsic", "jaxrl57.bandit")
# The first layer: pure math on arrays, importing nothing of the package above it.
PURE = ("jaxrl57.losses", "jaxrl57.exploration", "jaxrl57.intrinsic", "jaxrl57.bandit")
# The front: it resolves settings and builds what the runners are handed.
FRONT = ("jaxrl57.build", "jaxrl57.cli", "jaxrl57.train", "jaxrl57.report", "jaxrl57.request",
         "jaxrl57.configs", "jaxrl57.presets", "jaxrl57.reporting", "jaxrl57.playback",
         "jaxrl57.recording")
RUNNERS_AND_FRONT = ("jaxrl57.runners",) + FRONT


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """The jaxrl57 modules `name` imports (a `from M import x` of a submodule x counts x)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read():
    # The graph must see the edges it is meant to judge, or the tests below pass vacuously.
    modules = _modules()
    assert {"jaxrl57.cli", "jaxrl57.train", "jaxrl57.agents.dqn", "jaxrl57.replay.uniform"} \
        <= set(modules)
    edges = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "jaxrl57.request" in edges["jaxrl57.train"]
    assert "jaxrl57.replay.uniform" in edges["jaxrl57.replay"]  # relative or absolute
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package(graph):
    assert _cycles(graph) == []


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_import_no_runner_or_front_module(graph, lower):
    for name, deps in graph.items():
        if name == lower or name.startswith(lower + "."):
            bad = sorted(d for d in deps if d.startswith(RUNNERS_AND_FRONT))
            assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("pure", PURE)
def test_pure_math_imports_only_pure_math(graph, pure):
    assert pure in graph
    bad = sorted(d for d in graph[pure] if d not in PURE)
    assert not bad, f"{pure} imports {bad}"


def test_runners_import_no_front_module(graph):
    """Runners are handed agent, env and hyperparameters (`jaxrl57.build`): they
    never resolve settings or build an agent themselves."""
    for name, deps in graph.items():
        if name.startswith("jaxrl57.runners"):
            bad = sorted(d for d in deps if d.startswith(FRONT))
            assert not bad, f"{name} imports {bad}"
