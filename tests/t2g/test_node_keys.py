"""One key per node: the key of every node is computed once, when the plan is made, and
its value is the one the formula has always given (stage name, recipe section, upstream
keys, external fingerprints, code version). The formula is written out here, frozen, so
a refactor that moves a key for any node of the demo recipes fails."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import t2g.keys
from t2g import shards
from t2g.dag import cached, plan, section
from t2g.fingerprint import run_nonce
from t2g.kg.config import load_recipe
from t2g.runner import execute, stage_key
from t2g.stage import import_closure, module_imports
from t2g.stages import STAGES, registered
from t2g.store import ArtifactRef, Store
from tests.support.flowrun import REPO, SMALL, TINY

RECIPES = ["tiny.yaml", "tiny-graph.yaml", "tiny-r1.yaml"]


def frozen_code_version(modules: frozenset[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(modules):
        origin = Path(importlib.util.find_spec(name).origin)
        paths = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in paths:
            h.update(f"{name}:{path.name}".encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def frozen_key(name: str, config: Any, wiring: list[str], label: str | None = None) -> str:
    """The key as t2g has always computed it (t2g/stage.py cache_key of runner.stage_key)."""
    spec = registered(name)
    externals = [
        f"external:{n}={fp if fp is not None else 'unpinned:' + run_nonce()}"
        for n, fp in sorted(spec.externals(config).items())
    ]
    payload = json.dumps(
        {
            "stage": label or name,
            "config": config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config),
            "upstream": [*wiring, *externals],
            "code": frozen_code_version(import_closure(spec.module)),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def frozen_keys(recipe: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in plan(recipe):
        wiring = [f"{p}={out[up]}" for p, up in sorted(node.inputs)]
        out[node.name] = frozen_key(node.name, section(recipe, node.name), wiring)
    return out


def ref(stage: str, key: str) -> ArtifactRef:
    return ArtifactRef(uri=f"file:///nowhere/{stage}/{key}", stage=stage, key=key, rows=0)


def runner_keys(recipe: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in plan(recipe):
        upstream = {p: ref(up, out[up]) for p, up in node.inputs}
        out[node.name] = stage_key(node.name, section(recipe, node.name), upstream)
    return out


@pytest.mark.parametrize("name", RECIPES)
def test_every_node_keeps_the_key_the_formula_gives(name):
    recipe = load_recipe(REPO / "configs" / name)
    expected = frozen_keys(recipe)
    assert len(expected) >= 8
    assert {n.name: n.key for n in plan(recipe)} == expected  # planned once, carried by the node
    assert runner_keys(recipe) == expected  # a script without a plan gets the same key


def test_a_plan_from_given_artifacts_keys_its_nodes_from_theirs():
    recipe = load_recipe(REPO / "configs" / "tiny.yaml")
    full = {n.name: n.key for n in plan(recipe)}
    data = {s: ref(s, full[s]) for s in ("collect", "teacher", "extract", "filter", "reason")}
    assert {n.name: n.key for n in plan(recipe, given=data)} == {s: full[s] for s in ("sft", "grpo", "evaluate")}
    other = {n.name: n.key for n in plan(recipe, given={**data, "reason": ref("reason", "r" * 24)})}
    assert all(other[s] != full[s] for s in ("sft", "grpo", "evaluate"))
    assert [n.key for n in plan(recipe, given=set(data))] == [None, None, None]  # names alone: the keys are not known
    # Evaluate-only, without the optional GRPO input: keyed on the inputs it has.
    (only,) = plan(recipe, "evaluate", given={**data, "sft": ref("sft", "s" * 24)}, follow_optional=False)
    assert only.key == frozen_key("evaluate", recipe.evaluate, [f"docs={full['collect']}", f"sft_model={'s' * 24}"])


def counting(monkeypatch) -> list[str]:
    """The names every key digest is made for, from now on (t2g.keys.node_key's last step)."""
    calls: list[str] = []
    real = t2g.keys.cache_key
    monkeypatch.setattr(t2g.keys, "cache_key", lambda stage, *rest: calls.append(stage) or real(stage, *rest))
    return calls


def test_a_walk_computes_each_key_once_when_it_plans(tmp_path, monkeypatch):
    recipe = load_recipe(TINY, overrides=[*SMALL, "orchestration.filter_shard_size=40"])
    calls = counting(monkeypatch)
    nodes = plan(recipe, "filter")
    assert calls == ["collect", "extract", "filter"] and nodes[-1].sharding == "rows"
    calls.clear()
    store, done = Store(f"file://{tmp_path}/store"), {}
    for node in nodes:
        cfg, upstream = section(recipe, node.name), {p: done[up] for p, up in node.inputs}
        out = (
            shards.run_all(node.name, cfg, upstream, store, node.shard_size, node.key)
            if node.sharding
            else execute(node.name, cfg, upstream, store, node.key)
        )
        assert out.ref.key == node.key
        done[node.name] = out.ref
    assert set(calls) == {"filter-shard"} and len(calls) == store.manifest("filter", nodes[-1].key)["summary"]["shards"]
    calls.clear()
    assert cached(nodes, store) == done and calls == []


def test_the_flow_walk_computes_each_key_once_when_it_plans(tmp_path, monkeypatch, prefect_api):
    from flows.pipeline import pipeline

    calls = counting(monkeypatch)
    overrides = [*SMALL, "orchestration.filter_shard_size=40"]
    refs = pipeline(config=str(TINY), store=f"file://{tmp_path}/store", overrides=overrides, until="filter")
    shard_keys = Store(f"file://{tmp_path}/store").manifest("filter", refs["filter"]["key"])["shards"]
    assert sorted(calls) == sorted(["collect", "extract", "filter"] + ["filter-shard"] * len(shard_keys))
    calls.clear()
    again = pipeline(config=str(TINY), store=f"file://{tmp_path}/store", overrides=overrides, until="filter")
    assert all(r["hit"] for r in again.values()) and calls == ["collect", "extract", "filter"]


def _module_sources(name: str) -> list[Path]:
    origin = Path(importlib.util.find_spec(name).origin)
    return sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]


def test_stage_code_never_imports_the_registry():
    """The registry (t2g.stages) wires stages and reads their code; the code a stage runs
    gets what it needs passed down (t2g.training.work_dir takes the stage's module)."""
    upward = {
        (module, path.name)
        for spec in STAGES.values()
        for module in import_closure(spec.module)
        for path in _module_sources(module)
        if "t2g.stages" in module_imports(path, module)
    }
    assert upward == set()


def test_a_shard_keeps_the_key_the_formula_gives():
    recipe = load_recipe(REPO / "configs" / "tiny-graph.yaml")
    cfg = section(recipe, "graph-extract")
    others = {"model": ref("grpo", "g" * 24)}
    expected = frozen_key("graph-extract", cfg, ["d" * 24, f"model={'g' * 24}"], label="graph-extract-shard")
    assert shards.shard_key("graph-extract", cfg, "d" * 24, others) == expected


def test_a_stages_code_version_is_read_once_per_process(monkeypatch):
    import t2g.stages

    before = STAGES["filter"].code_version()
    monkeypatch.setattr(t2g.stages, "code_version", lambda *modules: "edited")
    assert STAGES["filter"].code_version() == before  # remembered: the files are not read again
    t2g.stages.module_version.cache_clear()  # what a test that edits a module does
    assert STAGES["filter"].code_version() == "edited"
    monkeypatch.undo()
    t2g.stages.module_version.cache_clear()
    assert STAGES["filter"].code_version() == before
