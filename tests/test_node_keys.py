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

from t2g import shards
from t2g.dag import plan, section
from t2g.fingerprint import run_nonce
from t2g.kg.config import load_recipe
from t2g.runner import stage_key
from t2g.stage import import_closure
from t2g.stages import registered
from t2g.store import ArtifactRef
from tests.flowrun import REPO

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
    externals = [f"external:{n}={fp if fp is not None else 'unpinned:' + run_nonce()}" for n, fp in sorted(spec.externals(config).items())]
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
    assert runner_keys(recipe) == expected


def test_a_shard_keeps_the_key_the_formula_gives():
    recipe = load_recipe(REPO / "configs" / "tiny-graph.yaml")
    cfg = section(recipe, "graph-extract")
    others = {"model": ref("grpo", "g" * 24)}
    expected = frozen_key("graph-extract", cfg, ["d" * 24, f"model={'g' * 24}"], label="graph-extract-shard")
    assert shards.shard_key("graph-extract", cfg, "d" * 24, others) == expected
