"""What every stage shares: its result shape, its code version and its cache key.

A stage is a plain function, tables in, `StageResult` out. Orchestration (tasks/) turns
the result into artifacts: `main` under the stage's name and each side table under
`<stage>-<name>` (e.g. `collect-quarantine`, `filter-dropped`), all with the same key.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa


@dataclass
class StageResult:
    main: pa.Table | Iterable[pa.Table]
    side: dict[str, pa.Table] = field(default_factory=dict)
    # Counts for the run report and UI: rows in/out, drop reasons, notes.
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    # A stage that produces a model saves it in a flat folder; its files become the
    # artifact's files, and downstream stages receive a local folder instead of a table.
    model_dir: Path | None = None


def code_version(*modules: str) -> str:
    """Digest of the source files of `modules` (a package: every .py file in it).

    Prefect's TASK_SOURCE hashes only the task function's own text; a prompt or parser
    change lives in other modules. A stage's modules are derived from its own module by
    `import_closure`, so a change in the rewards never invalidates extraction while a
    change in anything extraction imports does.
    """
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        for path in _sources(name):
            h.update(f"{name}:{path.name}".encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _sources(name: str) -> list[Path]:
    """A module's file, or every .py file of a package (a new source kind counts)."""
    path = _module_file(name)
    if path is None:
        raise ValueError(f"module {name} has no source file to version")
    return sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]


def _module_file(name: str) -> Path | None:
    """The source file of module `name` (a package's `__init__.py`), found on disk. Nothing is
    imported but the top-level package: find_spec imports every parent, and versioning
    `t2g.stages.grpo` imported torch and transformers into every plan (~10 s a process)."""
    top, _, rest = name.partition(".")
    spec = _top_spec(top)
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for base in spec.submodule_search_locations or []:  # a namespace package's too
        path = Path(base).joinpath(*rest.split("."))
        for candidate in (path / "__init__.py", path.with_name(path.name + ".py")):
            if candidate.is_file():
                return candidate
    return None


@functools.cache
def _top_spec(top: str):
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


# Not stage code: the registry's wiring (which stage feeds which) changes no stage's output.
NOT_STAGE_CODE = frozenset({"t2g.stages"})


@functools.cache
def import_closure(module: str, root: str = "t2g") -> frozenset[str]:
    """`module` and every module under the `root` package it imports, directly or through
    others, read from the source (imports inside functions count too: they run when the
    stage runs). A module that imports a package by its own name gets the whole package,
    as `code_version` versions it."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in NOT_STAGE_CODE and name != module:
            continue
        for path in _sources(name):
            todo += [m for m in module_imports(path, name) if m not in seen]
    return frozenset(seen - (NOT_STAGE_CODE - {module}))


def module_imports(path: Path, module: str, root: str = "t2g") -> list[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one (asked
            # only under `root`, whose modules are the ones versioned).
            inside = base == root or base.startswith(root + ".")
            names = [base] + [f"{base}.{a.name}" for a in node.names if inside and _is_module(f"{base}.{a.name}")]
        else:
            continue
        found += [n for n in names if n == root or n.startswith(root + ".")]
    return [n for n in found if n != root]  # the top package's __init__ is not stage code


def _is_module(name: str) -> bool:
    return _module_file(name) is not None


def cache_key(stage: str, config: Any, upstream: Iterable[str], code: str) -> str:
    """The artifact key and the Prefect cache key: same inputs, same config, same code."""
    payload = json.dumps(
        {"stage": stage, "config": config, "upstream": list(upstream), "code": code},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]
