"""The sidecar's modules import in one direction (cli -> hosts -> shipping / readers -> shipment,
run_context, settings) and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import qalita_sidecar

PACKAGE = Path(qalita_sidecar.__file__).parent
# A module may import from its own layer or any layer to its right.
LAYERS = ["cli", "hosts", "shipping", "readers", "shipment|run_context|settings"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            found = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            targets |= {t for t in found if t in modules and t != name}
        graph[name] = targets
    return graph


def _layer(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if first in names.split("|"):
            return i
    return len(LAYERS)  # the package root


def test_no_module_imports_against_the_data_path():
    wrong = [(m, t) for m, targets in _graph().items() for t in targets
             if "." in m and _layer(t) < _layer(m)]
    assert wrong == []


def test_the_import_graph_has_no_circle():
    graph = _graph()
    # a package's __init__ may import its own submodules (it assembles them); a submodule importing
    # the package back would be a circle
    circles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(trail[trail.index(nxt):] + [node, nxt] if nxt in trail
                               else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert circles == []


def test_the_graph_is_read():
    # guards the two tests above against passing on an empty graph
    graph = _graph()
    assert "qalita_sidecar.cli.dbt" in graph
    assert "qalita_sidecar.cli.common" in graph["qalita_sidecar.cli.dbt"]
