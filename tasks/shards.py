"""Sharded stages on Prefect, both kinds: plan → one mapped task per shard → merge.

Each shard is its own task run, cached by its shard key (content digest + stage config +
other inputs + code version) once the store holds its output, so a crash or kill costs
at most the shards in flight and a rerun reuses every finished one. While the shards run
the flow keeps a progress artifact up to date (shards done / total, and for LLM shards
the generated tokens per second). The splitting and merging are t2g's (t2g/shards.py);
this module only orchestrates, so any stage the registry shards runs this way:

- `llm` (extract, reason, graph-extract): `shard_task`, holding a GPU slot and asking the
  recipe's LLM response cache first, on the flow's own task runner;
- `rows` (filter): `row_shard`, plain, on the task runner of the subflow that
  flows/cpu_shards.py starts for it (threads, a Dask or a Ray cluster). The merged
  artifact has the node's key and the rows of the unsharded stage (it is row-wise).
"""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger, task, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext
from prefect.futures import as_completed

from t2g import shards as sh
from t2g.config import Recipe
from t2g.dag import section
from tasks.stage_task import options, prefect_key, publish, refs, stage_context
from tasks.storage import open_store


@task(name="shard-plan", task_run_name="{stage} plan [{recipe.name}]", persist_result=False)
def plan_task(recipe: Recipe, stage: str, key: str, upstream: dict[str, dict[str, Any]], size: int) -> dict[str, Any]:
    """Cut the stage's first input into content-addressed shards (t2g.shards.plan)."""
    p = sh.plan(stage, section(recipe, stage), refs(upstream), open_store(recipe.store), size, key)
    return {"key": p.key, "done": p.done.to_dict() if p.done else None, "shards": [s.to_dict() for s in p.shards]}


def shard_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """Offered to Prefect only once the store holds the shard's output (as for stages)."""
    recipe: Recipe = parameters["recipe"]
    shard = sh.Shard.from_dict(parameters["shard"])
    try:
        done = open_store(recipe.store).finished(sh.shard_stage(parameters["stage"]), shard.key) is not None
    except Exception:
        return None
    return prefect_key(recipe, sh.shard_stage(parameters["stage"]), shard.key) if done else None


@task(
    name="llm-shard",
    task_run_name="{stage} shard {shard[index]} [{recipe.name}]",
    cache_key_fn=shard_cache_key,
    persist_result=True,
    result_serializer="json",
)
def shard_task(
    recipe: Recipe, stage: str, shard: dict[str, Any], upstream: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    cfg = section(recipe, stage)
    with stage_context(recipe, stage):
        outcome = sh.run_shard(stage, cfg, sh.Shard.from_dict(shard), refs(upstream), open_store(recipe.store))
    get_run_logger().info(
        "%s shard %d: %s %d rows in %.1f s",
        stage,
        outcome.shard.index,
        "reused" if outcome.hit else "generated",
        outcome.rows,
        outcome.seconds,
    )
    return outcome.to_dict()


@task(
    name="row-shard",
    task_run_name="{stage} shard {shard[index]} [{recipe.name}]",
    cache_key_fn=shard_cache_key,  # offered only once the store holds the shard
    persist_result=True,
    result_serializer="json",
)
def row_shard(recipe: Recipe, stage: str, shard: dict[str, Any], upstream: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = sh.run_shard(
        stage, section(recipe, stage), sh.Shard.from_dict(shard), refs(upstream), open_store(recipe.store)
    )
    return out.to_dict()


@task(name="shard-merge", task_run_name="{stage} merge [{recipe.name}]", persist_result=False)
def merge_task(
    recipe: Recipe, stage: str, key: str, upstream: dict[str, dict[str, Any]], shards: list[dict[str, Any]],
    stats: dict[str, Any], reused: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    outcome = sh.merge(stage, section(recipe, stage), refs(upstream), [sh.Shard.from_dict(s) for s in shards],
                       open_store(recipe.store), stats, reused or (), key)  # fmt: skip
    return publish(stage, outcome)


def run_sharded(
    recipe: Recipe, stage: str, key: str, upstream: dict[str, dict[str, Any]], size: int, sharding: str
) -> dict[str, Any]:
    """Run node `stage` (its planned `key`) shard by shard inside the current flow, each
    shard as the `sharding` kind's task; returns its reference (as the plain stage tasks
    do, with `hit` when the merged artifact existed)."""
    logger = get_run_logger()
    planned = plan_task(recipe, stage, key, upstream, size)
    if planned["done"] is not None:
        return {**merge_task(recipe, stage, key, upstream, [], {}), "hit": True}
    shards = planned["shards"]
    total, llm = len(shards), sharding == "llm"
    progress = create_progress_artifact(0.0, key=f"t2g-{stage}-progress", description=f"{stage}: 0/{total} shards")
    shard_run = options(shard_task, recipe, stage, "shard") if llm else options(row_shard, recipe, stage, "shard")
    futures = shard_run.map(unmapped(recipe), unmapped(stage), shards, unmapped(upstream))
    started, done, tokens, failures, reused = time.time(), 0, 0, [], []
    for future in as_completed(list(futures)):
        try:
            out = future.result()
        except Exception as exc:  # the other shards go on; the stage fails once they are done
            failures.append(exc)
            continue
        done += 1
        if out["hit"] or future.state.name == "Cached":  # a Prefect cache hit returns the first run's record
            reused.append(out["shard"]["key"])
        else:
            tokens += int(out["summary"].get("completion_tokens", 0))
        rate = f", {tokens / max(time.time() - started, 1e-6):.1f} generated tokens/s" if llm else ""
        update_progress_artifact(progress, 100.0 * done / total, description=f"{stage}: {done}/{total} shards{rate}")
    if failures:
        logger.error("%s: %d of %d shards failed; finished shards are kept for the rerun", stage, len(failures), total)
        raise failures[0]
    stats: dict[str, Any] = {"shards_reused": len(reused), "shards_generated": total - len(reused)}
    if llm:
        stats["tokens_per_s"] = round(tokens / max(time.time() - started, 1e-6), 2)
    logger.info(
        "%s: %d shards of about %d rows, %d reused, %d generated", stage, total, size, len(reused), total - len(reused)
    )
    return {**merge_task(recipe, stage, key, upstream, shards, stats, reused), "hit": False}
