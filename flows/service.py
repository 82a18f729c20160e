"""Entry points of the training-only and evaluation-only deployments
(deployments/prefect.yaml): each starts from artifact URIs a user has (from a run report or
`t2g run`'s table) instead of refs, and finds the rest by walking the artifacts' lineage
(every manifest lists its upstream artifacts).

Both check their inputs first, so a wrong URI or a missing benchmark file fails within
seconds with the reason in the run's logs, before any model loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows import access
from flows.data import DATA_END
from flows.naming import run_name
from flows.walk import resolve, walk
from t2g.dag import plan
from t2g.store import ArtifactRef, Store
from tasks.storage import open_store


def artifact_ref(store: Store, root: str, uri: str) -> ArtifactRef:
    """The finished artifact at `uri` (`<store>/<stage>/<key>`), or a ValueError saying why not."""
    root = root.rstrip("/")
    if not uri.startswith(root + "/"):
        raise ValueError(f"artifact {uri} is not in the recipe's store {root}; pass store= to point at its store")
    stage, _, key = uri[len(root) + 1 :].strip("/").partition("/")
    ref = None
    if stage and key and "/" not in key:
        try:
            ref = store.ref(stage, key)
        except ValueError:  # not a valid stage/key name
            ref = None
    if ref is None:
        raise ValueError(f"no finished artifact at {uri} (no manifest there)")
    return ref


def lineage(store: Store, ref: ArtifactRef) -> dict[str, ArtifactRef]:
    """`ref` and every artifact upstream of it, by stage (manifests list their upstream refs)."""
    found: dict[str, ArtifactRef] = {}
    todo = [ref]
    while todo:
        r = todo.pop()
        if r.stage in found:
            continue
        found[r.stage] = r
        todo += _upstream(store, r)
    return found


def _upstream(store: Store, ref: ArtifactRef) -> list[ArtifactRef]:
    """The refs `ref`'s manifest lists as upstream; a ValueError naming it when the list is not
    what a writer records (manifests are not signed: one edited by hand, or by another user)."""
    listed = store.manifest(ref.stage, ref.key).get("upstream", [])
    try:
        if not isinstance(listed, list):
            raise TypeError(f"a {type(listed).__name__}, not a list")
        return [ArtifactRef.from_dict(u) for u in listed]
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"{ref.uri}: its manifest's upstream is not a list of artifact refs ({type(exc).__name__}: {exc}); "
            "rebuild the artifact"
        ) from None


@flow(name="t2g-train-only", flow_run_name=run_name("train-only"), log_prints=True)
def train_from_data(config: str, data: str, store: str | None = None, overrides: list[str] | None = None,
                    until: str | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Train (sft → grpo → evaluate) from a finished `reason` artifact's URI."""
    recipe = resolve(access.guard(config, store, overrides), store, overrides)
    st = open_store(recipe.store)
    ref = artifact_ref(st, recipe.store, data)
    if ref.stage != DATA_END:
        raise ValueError(f"data must be a {DATA_END} artifact (the SFT targets), got a {ref.stage} artifact: {data}")
    given = lineage(st, ref)
    nodes = plan(recipe, until, given=given)
    for node in nodes:  # what the training stages need from upstream of the data artifact
        for _, up in node.inputs:
            if up not in given and up not in {n.name for n in nodes}:
                raise ValueError(
                    f"{ref.uri} ({ref.stage}) has no {up} artifact upstream of it, which {node.name} needs"
                )
    get_run_logger().info("training from %s (%d rows): %s", ref.uri, ref.rows, ", ".join(n.name for n in nodes))
    return walk(recipe, nodes, {s: r.to_dict() for s, r in given.items()})


@flow(name="t2g-evaluate-only", flow_run_name=run_name("evaluate-only"), log_prints=True)
def evaluate_model(config: str, model: str, benchmark: str, store: str | None = None,
                   overrides: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Score a trained model (an `sft` or `grpo` artifact URI) on an interchange JSONL benchmark
    (and the held-out split of the documents it was trained from)."""
    checked = access.guard(config, store, overrides, benchmark=benchmark)  # a deployment's run: a data file only
    if not Path(benchmark).is_file():
        raise FileNotFoundError(f"benchmark {benchmark} does not exist (relative paths start at the repository root)")
    recipe = resolve(checked, store, overrides)
    st = open_store(recipe.store)
    ref = artifact_ref(st, recipe.store, model)
    if ref.stage not in ("sft", "grpo"):
        raise ValueError(f"model must be an sft or grpo artifact, got a {ref.stage} artifact: {model}")
    given = lineage(st, ref)
    recipe = recipe.model_copy(update={"evaluate": recipe.evaluate.model_copy(update={"benchmarks": [benchmark]})})
    nodes = plan(recipe, "evaluate", given=given, follow_optional=False)
    missing = [up for n in nodes for _, up in n.inputs if up not in given]
    if missing or [n.name for n in nodes] != ["evaluate"]:
        raise ValueError(
            f"{ref.uri} ({ref.stage}) lacks what evaluate needs upstream of it: {missing or [n.name for n in nodes]}"
        )
    out = walk(recipe, nodes, {s: r.to_dict() for s, r in given.items()})["evaluate"]
    get_run_logger().info("evaluation of %s on %s: %s", ref.uri, benchmark, out["uri"])
    return out
