"""The training stages as Prefect tasks: teacher bootstrap, sft → grpo → evaluate.

Same pattern as the data tasks (tasks/data.py): t2g's stage key is the cache key, results
are small JSON references, transient failures are retried. GPU stages are tagged `gpu`
and hold a slot of the `gpu` concurrency limit when the recipe names them
(`orchestration.gpu_stages`). The UI gets, beyond the counts: the reward curves
(rewards.png as a markdown image) and the evaluation table.
"""

from __future__ import annotations

import base64
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from t2g.config import Recipe
from tasks.data import _stage_task, run_stage  # noqa: F401  (run_stage: the training flows call it from here)
from tasks.storage import open_store

# log_prints off: under Prefect's print capture the trainers' dataset preparation floods
# the run log with bytecode listings (and every progress print would be an API call).
teacher = _stage_task("teacher").with_options(log_prints=False)
sft = _stage_task("sft").with_options(log_prints=False)
grpo = _stage_task("grpo").with_options(log_prints=False)
evaluate = _stage_task("evaluate").with_options(log_prints=False)

TRAIN_TASKS = {"sft": sft, "grpo": grpo, "evaluate": evaluate}


def publish_rewards(recipe: Recipe, ref: dict[str, Any]) -> None:
    """The GRPO reward curves as a UI artifact (the PNG inlined)."""
    png = open_store(recipe.store).read_file("grpo", ref["key"], "rewards.png")
    data = base64.b64encode(png).decode()
    create_markdown_artifact(
        f"## GRPO reward curves\n\n![rewards](data:image/png;base64,{data})\n\n`{ref['uri']}/rewards.png`",
        key="t2g-grpo-rewards",
        description="per-step mean of each GRPO reward",
    )


def publish_report(recipe: Recipe, ref: dict[str, Any]) -> str:
    """The evaluation table as UI artifacts; returns the markdown report."""
    store = open_store(recipe.store)
    summary = store.manifest("evaluate", ref["key"]).get("summary", {})
    create_table_artifact(summary.get("table", []), key="t2g-evaluation", description="base vs SFT vs GRPO")
    md = store.read_file("evaluate", ref["key"], "report.md").decode()
    create_markdown_artifact(md, key="t2g-evaluation-report", description="evaluation report")
    return md
