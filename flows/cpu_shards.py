"""The task runner for sharded CPU stages, chosen by the recipe (`orchestration`):

- `threads` (default): Prefect's ThreadPoolTaskRunner, `max_workers` threads;
- `dask`: prefect-dask's DaskTaskRunner (`pip install 't2g[dask]'`) on the scheduler at
  `address`, or on a local cluster of `max_workers` processes it starts;
- `ray`: prefect-ray's RayTaskRunner (`pip install 't2g[ray]'`) on the cluster at
  `address`, or a local one.

A flow's task runner is fixed when the flow starts, so each sharded CPU stage runs as a
small subflow (`t2g-shards`) that carries the chosen runner.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from t2g.config import Recipe
from tasks.shards import run_sharded


def task_runner(recipe: Recipe) -> TaskRunner:
    o = recipe.orchestration
    if o.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=o.max_workers)
    if o.task_runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RuntimeError("orchestration.task_runner: dask needs prefect-dask: pip install 't2g[dask]'") from None
        if o.address:
            return DaskTaskRunner(address=o.address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": o.max_workers, "threads_per_worker": 1})
    try:
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise RuntimeError("orchestration.task_runner: ray needs prefect-ray: pip install 't2g[ray]'") from None
    return RayTaskRunner(address=o.address) if o.address else RayTaskRunner(init_kwargs={"num_cpus": o.max_workers})


@flow(name="t2g-shards", log_prints=True)
def sharded_stage(
    recipe: Recipe, stage: str, key: str, upstream: dict[str, dict[str, Any]], size: int
) -> dict[str, Any]:
    """One row-wise stage (node `stage`, its planned `key`), shard by shard, on the recipe's task runner."""
    return run_sharded(recipe, stage, key, upstream, size, "rows")


def run_row_sharded_stage(
    recipe: Recipe, stage: str, key: str, upstream: dict[str, dict[str, Any]], size: int
) -> dict[str, Any]:
    name = f"{recipe.name}-{stage}-shards-{recipe.orchestration.task_runner}"
    return sharded_stage.with_options(task_runner=task_runner(recipe), flow_run_name=name)(
        recipe, stage, key, upstream, size
    )
