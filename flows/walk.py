"""The one walker: resolve the recipe once, then run each node of its graph (t2g.dag) as
its cached task, feeding every stage the artifacts its registry entry names.

Every flow (the pipeline, the data flow, train-only, evaluate-only) is this walk over a
different sub-graph; none of them wires stages by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prefect import get_run_logger

from flows.report import stage_lines
from t2g.config import Recipe
from t2g.dag import Node, graph
from t2g.kg.config import load_recipe  # a recipe with graph sections too
from t2g.store import ArtifactRef
from tasks.shards import run_sharded
from tasks.stage_task import publish_outputs, run_stage


def resolve(config: str, store: str | None = None, overrides: list[str] | None = None, now: Any = None) -> Recipe:
    """The run's recipe, resolved once (file, extends, overrides, store template: `{date}`
    is fixed here, at the run's start, or at `now`) and checked as a graph before any stage
    runs."""
    recipe = load_recipe(config, overrides=overrides, store=store, now=now)
    graph(recipe)
    return recipe


def run_node(recipe: Recipe, node: Node, upstream: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Node `node` as its task (or its shards' tasks), under the key the plan gave it."""
    if node.key is None:
        raise ValueError(f"node {node.name} has no key: plan it with the given artifacts' references, not their names")
    if node.sharding == "rows":
        from flows.cpu_shards import run_row_sharded_stage  # on the recipe's task runner

        return run_row_sharded_stage(recipe, node.name, node.key, upstream, node.shard_size)
    if node.sharding == "llm":
        return run_sharded(recipe, node.name, node.key, upstream, node.shard_size, "llm")
    return run_stage(recipe, node.name, node.key, upstream)


def walk(
    recipe: Recipe, nodes: Iterable[Node], given: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Run `nodes` in order; `given` holds artifacts the caller already has, by node name.
    Returns the reference of every node run (with `hit`), and logs the stage table."""
    logger = get_run_logger()
    done = {stage: ArtifactRef.from_dict(ref).to_dict() for stage, ref in (given or {}).items()}
    ran: dict[str, dict[str, Any]] = {}
    for node in nodes:
        upstream = {param: done[up] for param, up in node.inputs}
        ref = run_node(recipe, node, upstream)
        publish_outputs(recipe, ref)
        logger.info("%s: %s, %d rows, %s", node.name, "cache hit" if ref.get("hit") else "ran", ref["rows"], ref["uri"])
        ran[node.name] = ref
        done[node.name] = ArtifactRef.from_dict(ref).to_dict()
    logger.info("recipe %s:\n%s", recipe.name, "\n".join(stage_lines(ran)))
    return ran
