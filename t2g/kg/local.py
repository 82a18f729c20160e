"""A recipe's graph stages in this process, without Prefect: the same nodes (t2g.dag),
keys, shards and LLM cache as a flow run, walked in a loop. The scale benchmark and the
tests drive the stages this way; `t2g graph --config` runs them through Prefect."""

from __future__ import annotations

import time
from typing import Any

from t2g import shards
from t2g.dag import plan, section
from t2g.llm.cache import open_cache, use_cache
from t2g.runner import Outcome, execute
from t2g.store import ArtifactRef, Store


def run_graph(recipe: Any, until: str = "export", api_key: str | None = None) -> dict[str, Outcome]:
    """Run `until` and what it needs; every node's outcome (with `seconds`), in order."""
    store = Store(recipe.store)
    done: dict[str, ArtifactRef] = {}
    outcomes: dict[str, Outcome] = {}
    with use_cache(open_cache(recipe.store, recipe.llm_cache)):
        for node in plan(recipe, until):
            cfg = section(recipe, node.name)
            upstream = {param: done[up] for param, up in node.inputs}
            started = time.time()
            if node.sharding == "llm":
                out = shards.run_all(node.name, cfg, upstream, store, node.shard_size, node.key, api_key=api_key)
            elif node.sharding == "rows":
                out = shards.run_all(node.name, cfg, upstream, store, node.shard_size, node.key)
            else:
                out = execute(node.name, cfg, upstream, store, node.key)
            out.seconds = time.time() - started
            outcomes[node.name] = out
            done[node.name] = out.ref
    return outcomes
