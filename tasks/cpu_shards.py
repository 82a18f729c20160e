"""Row-wise sharding of CPU stages (filter) over the recipe's task runner.

t2g/shards.py does the cutting, per-shard caching and merging (the same machinery the
LLM stages use); this module maps the shards as Prefect tasks. The shards run on whatever
task runner the calling flow has: flows/cpu_shards.py picks it from
`orchestration.task_runner` (threads, a Dask or a Ray cluster). The merged artifact has the
stage's normal key and the same rows as the unsharded stage (filter is row-wise), so
downstream stages and the cache cannot tell the difference.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task, unmapped
from prefect.tasks import exponential_backoff

from t2g import shards as sh
from t2g.config import Recipe
from tasks.gpu import stage_tags
from tasks.results import json_only_result_storage
from tasks.shards import merge_task, plan_dict, shard_cache_key
from tasks.stage_task import refs, retry_transient, section
from tasks.storage import open_store


@task(name="shard-plan", task_run_name="{stage} plan [{recipe.name}]", persist_result=False)
def plan_rows(recipe: Recipe, stage: str, upstream: list[dict[str, Any]], size: int) -> dict[str, Any]:
    return plan_dict(recipe, stage, upstream, size)


@task(
    name="cpu-shard",
    task_run_name="{stage} shard {shard[index]} [{recipe.name}]",
    cache_key_fn=shard_cache_key,  # offered only once the store holds the shard
    persist_result=True,
    result_serializer="json",
    retry_condition_fn=retry_transient,
)
def cpu_shard(recipe: Recipe, stage: str, shard: dict[str, Any], upstream: list[dict[str, Any]]) -> dict[str, Any]:
    out = sh.run_shard(stage, section(recipe, stage), sh.Shard.from_dict(shard), refs(upstream), open_store(recipe.store))
    return out.to_dict()


def run_cpu_sharded(stage: str, recipe: Recipe, upstream: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """Plan, map one task per shard on the current flow's task runner, merge."""
    planned = plan_rows(recipe, stage, upstream, size)
    if planned["done"] is not None:
        return {**merge_task(recipe, stage, upstream, [], {}), "hit": True}
    shard_task = cpu_shard.with_options(
        retries=recipe.retries.attempts,
        retry_delay_seconds=exponential_backoff(backoff_factor=recipe.retries.backoff_s),
        retry_jitter_factor=0.5,
        tags=stage_tags(recipe, stage) | {"shard"},
        result_storage=json_only_result_storage(),  # never read a non-JSON record back
    )
    futures = shard_task.map(unmapped(recipe), unmapped(stage), planned["shards"], unmapped(upstream))
    outs = [f.result() for f in futures]  # raises the first failed shard's error; finished shards stay stored
    reused = sum(bool(o["hit"]) for o in outs)
    get_run_logger().info("%s: %d shards of <= %d rows, %d reused", stage, len(outs), size, reused)
    stats = {"shards_reused": reused, "shards_generated": len(outs) - reused}
    return {**merge_task(recipe, stage, upstream, planned["shards"], stats), "hit": False}
