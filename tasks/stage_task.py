"""What every stage task shares: the cache key, the retry policy, the UI artifacts.

The cache key is t2g's own stage key (stage, config section, upstream keys, code version),
so Prefect and the store agree on what is done. The key is offered to Prefect only once
the store holds the artifact: Prefect never caches a result the store does not have, and
a wiped Prefect database still finds finished work in the store (the task body returns
the existing artifact at once).
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TaskRunContext

from t2g.config import Recipe
from t2g.runner import Outcome, stage_key
from t2g.store import ArtifactRef, StoreError
from tasks.storage import open_store

# Transient: worth a retry. Anything else (a bad recipe, bad data, a bug) fails at once.
TRANSIENT = (StoreError, ConnectionError, TimeoutError)


def section(recipe: Recipe, stage: str) -> Any:
    from t2g.stages import STAGES

    return getattr(recipe, STAGES[stage].section)


def refs(upstream: list[dict[str, Any]]) -> list[ArtifactRef]:
    return [ArtifactRef.from_dict(u) for u in upstream]


def cache_key_fn(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    stage = context.task.name
    recipe: Recipe = parameters["recipe"]
    ups = refs(parameters.get("upstream") or [])
    key = stage_key(stage, section(recipe, stage), ups)
    try:
        done = open_store(recipe.store).has(stage, key)
    except (StoreError, ValueError):
        return None
    return f"t2g-{stage}-{key}" if done else None


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TRANSIENT:
        return True
    except BaseException:
        return False
    return False


def publish(stage: str, outcome: Outcome) -> dict[str, Any]:
    """Log the outcome, publish the stage's UI artifacts, return the JSON reference."""
    logger = get_run_logger()
    summary = outcome.summary
    verb = "cache hit: reused" if outcome.hit else "wrote"
    logger.info("%s %s (%d rows) in %.1f s", verb, outcome.ref.uri, outcome.ref.rows, outcome.seconds)
    if not outcome.hit:
        rows = [
            {"what": "rows in", "count": summary.get("rows_in", "")},
            {"what": "rows out", "count": outcome.ref.rows},
        ]
        rows += [{"what": f"{name} artifact", "count": ref.rows} for name, ref in outcome.side.items()]
        rows += [{"what": f"dropped: {reason}", "count": n} for reason, n in sorted((summary.get("reasons") or {}).items())]
        create_table_artifact(rows, key=f"t2g-{stage}-counts", description=f"{stage}: rows in/out and drop reasons")
        lines = [f"## {stage}", "", f"- output: `{outcome.ref.uri}` ({outcome.ref.rows} rows)"]
        lines += [f"- {name}: `{ref.uri}` ({ref.rows} rows)" for name, ref in outcome.side.items()]
        lines += [f"- {k}: {v}" for k, v in summary.items() if k not in ("reasons", "per_source")]
        lines.append(f"- took {outcome.seconds:.1f} s")
        create_markdown_artifact("\n".join(lines), key=f"t2g-{stage}-summary", description=f"{stage} summary")
    return {**outcome.ref.to_dict(), "hit": outcome.hit}
