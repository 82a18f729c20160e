"""The layer rules (docs/design.md), read from the source: who may import whom, no import
cycle inside t2g/, and no reaching into another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from t2g.stage import module_imports

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("t2g", "tasks", "flows")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _all_imports(path: Path) -> set[str]:
    """Every module an import statement names, at any depth (function-level imports count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_under_t2g():
    modules = _modules("t2g")
    graph = {name: {m for m in module_imports(path, name) if m in modules} for name, path in modules.items()}
    assert _cycles(graph) == []
    # The check sees imports inside functions too (the way cycles hide): a planted one is found.
    graph["t2g.store"] = graph["t2g.store"] | {"t2g.runner"}
    assert any({"t2g.runner", "t2g.store"} <= set(c) for c in _cycles(graph))


@pytest.mark.parametrize(
    "package, forbidden",
    [("t2g", ("prefect", "flows", "tasks")), ("tasks", ("flows",))],
)
def test_lower_layers_never_import_higher_ones(package, forbidden):
    bad = {
        name: sorted(m for m in _all_imports(path) if m.split(".")[0] in forbidden)
        for name, path in _modules(package).items()
    }
    assert {k: v for k, v in bad.items() if v} == {}


def _private_reach_ins(path: Path) -> list[str]:
    """`x._name` on anything but self/cls, unless this file defines `_name` itself (a
    class's own helpers used by its sibling in the same module); `from m import _name`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    own |= {t.attr for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Attribute)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr not in own:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom):
            found += [f"{path.relative_to(REPO)}:{node.lineno} from {node.module} import {a.name}"
                      for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
    return found


def test_no_module_reaches_into_another_modules_private_names():
    # tasks/results.py imports Prefect's own sync/async dispatch helpers (prefect._internal):
    # Prefect's storage blocks are built with them and 3.x has no public equivalent. That is
    # a module path, not a private name of an object, and the only such import.
    files = [p for package in (*LAYERS, "bench") for p in sorted((REPO / package).rglob("*.py"))]
    assert [hit for p in files for hit in _private_reach_ins(p) if not _allowed(hit)] == []


# Known, deliberate reach-ins, each with its reason (none today).
ALLOWED: set[tuple[str, str]] = set()


def _allowed(hit: str) -> bool:
    where, _, what = hit.partition(" ")
    return (where.rsplit(":", 1)[0], what) in ALLOWED


def test_the_reach_in_check_can_fail(tmp_path, monkeypatch):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from t2g.store import _loose_path\n\ndef f(store, client):\n    return store._backend, client._get_credentials()\n"
    )
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    assert len(_private_reach_ins(probe)) == 3
