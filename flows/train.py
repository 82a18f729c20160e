"""The training flow: sft → grpo → evaluate, each a cached task.

SFT and GRPO train on the reason stage's output; evaluate scores the base model (what the
SFT started from), the SFT model and the GRPO model on the held-out split of collect.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.naming import run_name
from t2g.config import TEACHER, Recipe
from tasks import train as t

TRAIN_STAGES = ("sft", "grpo", "evaluate")


def run_train(
    recipe: Recipe,
    collect: dict[str, Any],
    reason: dict[str, Any],
    until: str | None = None,
    teacher: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Chain the training tasks after the data flow's collect and reason references (and
    its teacher's, which the SFT starts from when `sft.model` is "@teacher")."""
    out: dict[str, dict[str, Any]] = {}
    if recipe.sft.model == TEACHER and teacher is None:
        raise ValueError(f'sft.model is "{TEACHER}" but no teacher artifact was passed to the training flow')
    out["sft"] = t.run_stage(t.sft, recipe, [reason, teacher] if recipe.sft.model == TEACHER else [reason])
    if until == "sft":
        return out
    out["grpo"] = t.run_stage(t.grpo, recipe, [reason, out["sft"]])
    t.publish_rewards(recipe, out["grpo"])
    if until == "grpo":
        return out
    out["evaluate"] = t.run_stage(t.evaluate, recipe, [collect, out["sft"], out["grpo"]])
    t.publish_report(recipe, out["evaluate"])
    return out


@flow(name="t2g-train", flow_run_name=run_name("train"), log_prints=True)
def train_flow(
    config: str,
    collect: dict[str, Any],
    reason: dict[str, Any],
    store: str | None = None,
    overrides: list[str] | None = None,
    until: str | None = None,
    teacher: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """SFT the student, GRPO it, evaluate base vs SFT vs GRPO."""
    from flows.data import resolve

    recipe = resolve(config, store, overrides)
    refs = run_train(recipe, collect, reason, until, teacher)
    get_run_logger().info("training flow done: %s", {s: r["uri"] for s, r in refs.items()})
    return refs


def closing_report(recipe: Recipe, refs: dict[str, dict[str, Any]]) -> str:
    """What `t2g run` prints at the end of a run that evaluated: the F1 table and where
    the report, the predictions and the reward plot are."""
    if "evaluate" not in refs:
        return ""
    store = t.open_store(recipe.store)
    md = store.read_file("evaluate", refs["evaluate"]["key"], "report.md").decode()
    lines = ["", *data_lines(store, refs), md.strip(), "", f"report:      {refs['evaluate']['uri']}/report.md (and report.json; predictions in the parquet parts)"]
    if "grpo" in refs:
        lines.append(f"reward plot: {refs['grpo']['uri']}/rewards.png")
    return "\n".join(lines)


def data_lines(store, refs: dict[str, dict[str, Any]]) -> list[str]:
    """Where the student's data came from, when a teacher labelled it: the teacher's
    labels against the documents' own gold (the toy world's hidden gold), per split, and
    what the filter removed."""
    from t2g.stages.extract import label_quality

    def summary(stage: str) -> dict[str, Any]:
        if stage not in refs:
            return {}
        return store.manifest(refs[stage]["stage"], refs[stage]["key"]).get("summary") or {}

    lines = []
    for row in label_quality(summary("extract")):
        lines.append(
            f"teacher labels, {row['split']} ({row['documents']} documents, against their gold): "
            f"entity P/R/F1 {row['entity precision']:.3f} / {row['entity recall']:.3f} / {row['entity f1']:.3f}, "
            f"relation {row['relation precision']:.3f} / {row['relation recall']:.3f} / {row['relation f1']:.3f}"
        )
    kept = summary("filter")
    if lines and kept:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted((kept.get("reasons") or {}).items(), key=lambda kv: -kv[1]))
        lines.append(f"filter kept {kept.get('kept')} of {kept.get('rows_in')} labelled documents" + (f" (dropped: {reasons})" if reasons else ""))
    return [*lines, ""] if lines else []
