"""The data flow: collect → extract → filter → reason, each a cached task."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.naming import run_name
from t2g.config import STAGES, Recipe, load_recipe
from tasks import data as t
from tasks import shards

DATA_STAGES = ("collect", "extract", "filter", "reason")


def resolve(config: str, store: str | None = None, overrides: list[str] | None = None) -> Recipe:
    return load_recipe(config, overrides=overrides, store=store)


def check_until(until: str | None) -> None:
    if until is not None and until not in STAGES:
        raise ValueError(f"until={until!r} is not a stage; choose one of {', '.join(STAGES)}")


def run_data(recipe: Recipe, until: str | None = None) -> dict[str, dict[str, Any]]:
    """Chain the data tasks, stopping after `until`; returns each stage's reference."""
    out: dict[str, dict[str, Any]] = {}
    upstream: list[dict[str, Any]] = []
    for stage, task in (("collect", t.collect), ("extract", t.extract), ("filter", t.filter_), ("reason", t.reason)):
        if stage == "extract" and recipe.teacher is not None:
            # The tiny teacher (a model artifact) bootstraps on collect's gold; extract
            # gets it as its second input (extract.model: "@teacher").
            from tasks.train import teacher as teacher_task

            out["teacher"] = t.run_stage(teacher_task, recipe, upstream)
            upstream = [*upstream, out["teacher"]]
        if stage == "filter" and recipe.orchestration.filter_shard_size:
            from flows.cpu_shards import run_sharded_cpu_stage  # row-wise shards on the recipe's task runner

            out[stage] = run_sharded_cpu_stage(stage, recipe, upstream)
        elif shards.is_sharded(recipe, stage):
            out[stage] = shards.run_sharded(stage, recipe, upstream)  # one cached task per shard, merged
        else:
            out[stage] = t.run_stage(task, recipe, upstream)
        upstream = [out[stage]]
        if stage == until:
            break
    return out


@flow(name="t2g-data", flow_run_name=run_name("data"), log_prints=True)
def data_flow(
    config: str,
    store: str | None = None,
    overrides: list[str] | None = None,
    until: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Collect texts, label them, filter and augment, write the SFT targets."""
    check_until(until)
    recipe = resolve(config, store, overrides)
    refs = run_data(recipe, until)
    get_run_logger().info("data flow done: %s", {s: r["uri"] for s, r in refs.items()})
    return refs
