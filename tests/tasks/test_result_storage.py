"""Every Prefect task t2g persists a result for reads and writes it through
`JsonOnlyResultStorage` (RELIABILITY.md promise 8): a persisted task without it would
deserialise whatever record Prefect finds under its cache key.

Two halves, both needed: each persisted task, with `tasks.stage_task.options` applied as
the flows apply it, carries the JSON-only storage; and no flow or task calls a persisted
task any other way (a bare `shard_task.map(...)` would persist with Prefect's default)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

from prefect import Task

import flows
import tasks
from t2g.config import load_recipe
from t2g.stages import STAGES
from tasks.results import JsonOnlyResultStorage
from tasks.stage_task import options, stage_task
from tests.support.flowrun import TINY

REPO = Path(__file__).resolve().parents[2]
PACKAGES = (tasks, flows)


def _modules():
    for package in PACKAGES:
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            yield importlib.import_module(info.name)


def module_tasks() -> dict[str, Task]:
    """Every Task object bound at module level in tasks/ and flows/, by `module.name`."""
    found = {}
    for module in _modules():
        for name, value in vars(module).items():
            if isinstance(value, Task) and value.fn.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def persisted() -> dict[str, Task]:
    every = {**module_tasks(), **{f"stage_task({s!r})": stage_task(s) for s in STAGES}}
    return {name: t for name, t in every.items() if t.persist_result}


def test_the_walk_finds_the_persisted_tasks():
    names = set(persisted())
    # A walk that found nothing would pass the checks below vacuously.
    assert {"tasks.shards.shard_task", "tasks.shards.row_shard", "stage_task('collect')"} <= names, names
    assert len(names) >= len(STAGES) + 2


def test_every_persisted_task_as_run_has_the_json_only_storage(prefect_api):
    recipe = load_recipe(TINY)
    wrong = {}
    for name, t in persisted().items():
        stage = name.split("'")[1] if name.startswith("stage_task") else "extract"
        storage = options(t, recipe, stage).result_storage
        if not isinstance(storage, JsonOnlyResultStorage):
            wrong[name] = type(storage).__name__
    assert not wrong, f"persisted tasks without JsonOnlyResultStorage: {wrong}"


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _is_options_first_arg(node: ast.AST, parent: ast.AST | None) -> bool:
    return isinstance(parent, ast.Call) and getattr(parent.func, "id", None) == "options" and parent.args[:1] == [node]


def test_persisted_tasks_are_only_called_through_options():
    """Each use of a persisted task in tasks/ and flows/ is `options(<task>, ...)` (for the
    stage tasks: `options(stage_task(stage), ...)`): there is no path that runs one with
    Prefect's default result storage."""
    names = {name.rsplit(".", 1)[1] for name in persisted() if not name.startswith("stage_task")} | {"stage_task"}
    bare = []
    for path in sorted([*REPO.glob("tasks/*.py"), *REPO.glob("flows/*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        parents = _parents(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Name) and node.id in names and isinstance(node.ctx, ast.Load)):
                continue
            parent = parents.get(node)
            if isinstance(parent, ast.Call) and parent.func is node and node.id == "stage_task":
                node, parent = parent, parents.get(parent)  # the call stage_task(stage) is the task
            if not _is_options_first_arg(node, parent):
                bare.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(parent or node)}")
    assert not bare, "persisted tasks used without tasks.stage_task.options (no JSON-only storage):\n" + "\n".join(bare)
