"""Row-wise sharding of CPU stages (filter) over the recipe's task runner.

t2g/shards.py does the cutting, per-shard caching and merging (the same machinery the
LLM stages use); this module maps the shards as Prefect tasks. The shards run on whatever
task runner the calling flow has: flows/cpu_shards.py picks it from
`orchestration.task_runner` (threads, a Dask or a Ray cluster). The merged artifact has the
stage's normal key and the same rows as the unsharded stage (the stage is row-wise), so
downstream stages and the cache cannot tell the difference.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task, unmapped

from t2g import shards as sh
from t2g.config import Recipe
from t2g.dag import section
from tasks.shards import merge_task, plan_task, shard_cache_key
from tasks.stage_task import options, refs
from tasks.storage import open_store


@task(
    name="row-shard",
    task_run_name="{stage} shard {shard[index]} [{recipe.name}]",
    cache_key_fn=shard_cache_key,  # offered only once the store holds the shard
    persist_result=True,
    result_serializer="json",
)
def row_shard(recipe: Recipe, stage: str, shard: dict[str, Any], upstream: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = sh.run_shard(stage, section(recipe, stage), sh.Shard.from_dict(shard), refs(upstream), open_store(recipe.store))
    return out.to_dict()


def run_row_sharded(recipe: Recipe, stage: str, upstream: dict[str, dict[str, Any]], size: int) -> dict[str, Any]:
    """Plan, map one task per shard on the current flow's task runner, merge."""
    planned = plan_task(recipe, stage, upstream, size)
    if planned["done"] is not None:
        return {**merge_task(recipe, stage, upstream, [], {}), "hit": True}
    futures = options(row_shard, recipe, stage, "shard").map(unmapped(recipe), unmapped(stage), planned["shards"], unmapped(upstream))
    outs = [f.result() for f in futures]  # raises the first failed shard's error; finished shards stay stored
    # A Prefect cache hit returns the first run's record, which says it ran: ask the state.
    reused_keys = [o["shard"]["key"] for o, f in zip(outs, futures) if o["hit"] or f.state.name == "Cached"]
    get_run_logger().info("%s: %d shards of <= %d rows, %d reused", stage, len(outs), size, len(reused_keys))
    stats = {"shards_reused": len(reused_keys), "shards_generated": len(outs) - len(reused_keys)}
    return {**merge_task(recipe, stage, upstream, planned["shards"], stats, reused_keys), "hit": False}
