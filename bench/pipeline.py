"""A recipe end to end through t2g.runner, stage by stage (no Prefect server: the figures
are the stages' own), for the benchmarks and experiments that compare whole runs.

A second run on the same store with other overrides reruns only what they change (a
student seed, say), as the cached pipeline would.
"""

from __future__ import annotations

import json
import time
from typing import Any

from t2g.dag import plan, section
from t2g.kg.config import load_recipe
from t2g.runner import execute
from t2g.store import ArtifactRef, Store


def run_recipe(
    config: str, store_uri: str, overrides: list[str], until: str | None = None
) -> tuple[dict[str, Any], dict[str, ArtifactRef], Store]:
    """Walk the recipe's graph (t2g.dag, as the flows walk it); returns the figures (time
    and hit per stage, the evaluation's F1 table and comparisons when it ran), every
    stage's artifact and the store."""
    recipe = load_recipe(config, overrides=overrides, store=store_uri)
    store = Store(recipe.store)
    refs: dict[str, ArtifactRef] = {}
    timings: dict[str, Any] = {}
    started = time.time()
    for node in plan(recipe, until=until):
        stage = node.name  # a later round's node (sft-2) keys and stores under its own name
        outcome = execute(
            stage, section(recipe, stage), {param: refs[up] for param, up in node.inputs}, store, node.key
        )
        refs[stage] = outcome.ref
        timings[stage] = {"seconds": round(outcome.seconds, 1), "hit": outcome.hit}
        print(f"{stage:<9} {'hit' if outcome.hit else 'ran'} {outcome.seconds:7.1f} s", flush=True)
    figs: dict[str, Any] = {
        "config": config,
        "overrides": overrides,
        "seconds": round(time.time() - started, 1),
        "stages": timings,
    }
    if "evaluate" in refs:
        report = evaluation_report(store, refs["evaluate"])
        figs["f1"] = {name: model_figures(r) for name, r in report["models"].items()}
        figs["comparisons"] = report.get("comparisons")
    return figs, refs, store


def evaluation_report(store: Store, ref: ArtifactRef) -> dict[str, Any]:
    return json.loads(store.read_file("evaluate", ref.key, "report.json"))


def model_figures(r: dict[str, Any]) -> dict[str, Any]:
    """One model's row of the evaluation: F1 and the answer-shape figures."""
    out = {"entities": r["entities"]["micro"]["f1"], "relations": r["relations"]["micro"]["f1"],
           "valid_json_rate": r["valid_json_rate"], "type_conformity": r.get("type_conformity")}  # fmt: skip
    for key in ("format_rate", "think_chars"):
        if r.get("thinking"):
            out[key] = r.get(key)
    return out
