"""The data stages as Prefect tasks: collect → extract → filter → reason."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.tasks import exponential_backoff

from t2g.config import Recipe
from t2g.runner import execute
from tasks.gpu import gpu_slot, stage_tags
from tasks.results import json_only_result_storage
from tasks.storage import open_store
from tasks.stage_task import cache_key_fn, publish, refs, retry_transient, section


def _stage_task(stage: str):
    def run(recipe: Recipe, upstream: list[dict[str, Any]]) -> dict[str, Any]:
        with gpu_slot(recipe, stage):  # GPU stages hold a slot of the `gpu` limit (tasks/gpu.py)
            outcome = execute(stage, section(recipe, stage), refs(upstream), open_store(recipe.store))
        return publish(stage, outcome)

    run.__name__ = run.__qualname__ = f"{stage}_task"
    return task(
        run,
        name=stage,
        task_run_name=f"{stage} [{{recipe.name}}]",
        cache_key_fn=cache_key_fn,
        persist_result=True,
        result_serializer="json",
        retries=3,
        retry_delay_seconds=exponential_backoff(backoff_factor=2),
        retry_jitter_factor=0.5,
        retry_condition_fn=retry_transient,
        tags=["t2g", f"stage:{stage}"],
    )


collect = _stage_task("collect")
extract = _stage_task("extract")
filter_ = _stage_task("filter")
reason = _stage_task("reason")


def with_recipe_retries(t, recipe: Recipe):
    """Apply the recipe's retry settings to a task."""
    return t.with_options(
        # A saved block (Prefect insists): refuses any stored result that is not plain JSON.
        result_storage=json_only_result_storage(),
        retries=recipe.retries.attempts,
        retry_delay_seconds=exponential_backoff(backoff_factor=recipe.retries.backoff_s),
        tags=stage_tags(recipe, t.name),
    )


def run_stage(task, recipe: Recipe, upstream: list[dict[str, Any]]) -> dict[str, Any]:
    """Run one stage task with the recipe's retries; returns its reference, saying
    `hit` also when Prefect served its own cached record (which holds the first run's)."""
    state = with_recipe_retries(task, recipe)(recipe, upstream, return_state=True)
    ref = state.result()  # raises the stage's error if it failed
    return {**ref, "hit": bool(ref.get("hit")) or state.name == "Cached"}
