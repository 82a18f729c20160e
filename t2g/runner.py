"""Run one stage against the store: the part of "a cached stage" that is not Prefect.

A node's key comes with it (t2g.dag.plan computes every key once, through
t2g.keys.node_key); `execute` reuses a finished artifact when the store has one (even if
Prefect's own cache was wiped), otherwise runs the stage and writes its artifacts
(`commit`: side artifacts before the main manifest, so a finished main artifact implies
finished side artifacts). `finished` and `commit` are also how t2g.shards reads and
writes a merged stage: one "already done?" and one write path for every stage.

A training section with `launch` set runs under `accelerate launch` instead: every rank
runs `run_here` (t2g/rank.py), only the main rank writes, and `execute` then finds
the artifact like a finished one.

`stage` is a node's name (t2g.dag): a stage's own, or a later round's `sft-2`, whose
artifacts and key carry that name while it runs the registry entry it repeats.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from t2g import __version__
from t2g.checkpoints import checkpoint_store
from t2g.keys import config_dict, never_cached, node_key
from t2g.launch import LaunchError, launch
from t2g.stage import StageResult
from t2g.stages import registered
from t2g.store import ArtifactRef, Store

# A stage's inputs by parameter name. A plain list is also taken (scripts, tests): it is
# matched to the stage's wired inputs in their declared order.
Upstream = Mapping[str, ArtifactRef] | Sequence[ArtifactRef]


@dataclass
class Outcome:
    ref: ArtifactRef
    hit: bool
    summary: dict[str, Any] = field(default_factory=dict)
    side: dict[str, ArtifactRef] = field(default_factory=dict)
    seconds: float = 0.0


def named(stage: str, config: Any, upstream: Upstream) -> dict[str, ArtifactRef]:
    """`upstream` by parameter name (see Upstream)."""
    if isinstance(upstream, Mapping):
        return dict(upstream)
    params = [i.param for i in registered(stage).active_inputs(config)]
    if len(upstream) > len(params):
        raise ValueError(f"{stage} takes {len(params)} inputs ({', '.join(params) or 'none'}), got {len(upstream)}")
    return dict(zip(params, upstream))


def load_input(store: Store, ref: ArtifactRef, side: str | None = None) -> pa.Table | Path:
    """A table artifact as a table; a model artifact as a local folder to load it from;
    with `side`, the artifact's side table of that name (`filter-dropped`)."""
    if side is not None:
        return store.read(f"{ref.stage}-{side}", ref.key)
    if store.manifest(ref.stage, ref.key).get("kind") == "model":
        return store.materialize(ref.stage, ref.key)
    return store.read(ref.stage, ref.key)


def load_inputs(stage: str, upstream: Mapping[str, ArtifactRef], store: Store) -> dict[str, pa.Table | Path]:
    """Every input of `stage` by parameter, read as its registry entry says (main or side)."""
    sides = {i.param: i.side for i in registered(stage).inputs if i.side}
    return {param: load_input(store, ref, sides.get(param)) for param, ref in upstream.items()}


def stage_key(stage: str, config: BaseModel | dict[str, Any], upstream: Upstream) -> str:
    """The key of `stage` on these artifacts, for a caller without a plan (a script, a
    test): t2g.keys.node_key on the artifacts' keys. A planned node carries its key."""
    return node_key(stage, config, {param: ref.key for param, ref in named(stage, config, upstream).items()})


def execute(stage: str, config: BaseModel, upstream: Upstream, store: Store, key: str | None = None) -> Outcome:
    """The node's artifact: the store's when finished, else made here (or by a launch).
    `key`: the planned node's (Node.key); None, for a caller without a plan: `stage_key`."""
    started = time.time()
    upstream = named(stage, config, upstream)
    key = key or stage_key(stage, config, upstream)
    done = finished(stage, key, store, started)
    if done is not None:
        return done
    if getattr(config, "launch", None) is not None:
        return launched(stage, config, upstream, store, key, started)
    return run_here(stage, config, upstream, store, key)


def finished(stage: str, key: str, store: Store, started: float, hit: bool = True) -> Outcome | None:
    """The store's finished artifact (and its side artifacts) as an outcome; None when
    there is none."""
    existing = store.finished(stage, key)
    if existing is None:
        return None
    manifest = store.manifest(stage, key)
    side = {s: ref for s in registered(stage).side if (ref := store.ref(f"{stage}-{s}", key)) is not None}
    return Outcome(existing, hit, manifest.get("summary", {}), side, time.time() - started)


def launched(
    stage: str, config: BaseModel, upstream: Mapping[str, ArtifactRef], store: Store, key: str, started: float
) -> Outcome:
    """Run the stage under `accelerate launch` (t2g/launch.py): every rank trains, the main
    rank writes the artifact through `run_here` (t2g/rank.py), and this process reads it back."""
    launch(stage, config, upstream, store, key)
    outcome = finished(stage, key, store, started, hit=False)
    if outcome is None:
        raise LaunchError(f"{stage}: the launched run exited cleanly but wrote no artifact at {store.uri(stage, key)}")
    return outcome


def run_here(
    stage: str, config: BaseModel, upstream: Upstream, store: Store, key: str | None = None, write: bool = True,
    note: dict[str, Any] | None = None,
) -> Outcome | None:  # fmt: skip
    """Run the stage in this process and write its artifacts under `key` (the node's;
    None: `stage_key`). A launched stage's ranks other than the main one pass
    `write=False`: they train along and write nothing. `note` joins the summary (what the
    launch adds: how many processes trained)."""
    spec = registered(stage)
    started = time.time()
    upstream = named(stage, config, upstream)
    key = key or stage_key(stage, config, upstream)
    inputs = load_inputs(stage, upstream, store)
    # Training stages mirror their checkpoints to the store (a crashed worker's disk is
    # gone); through a context, not the config, so the key stays the same.
    with checkpoint_store(store) as checkpoints:
        result = spec.load()(config, **inputs)
    if not write:
        return None
    outcome = commit(stage, config, upstream, key, store, result, started, note)
    checkpoints.discard()  # the trained model is an artifact now
    return outcome


def commit(
    stage: str, config: Any, upstream: Mapping[str, ArtifactRef], key: str, store: Store, result: StageResult,
    started: float, note: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
) -> Outcome:  # fmt: skip
    """Write a stage's result as its artifacts under `key`, the one write path of a stage
    run here and of a sharded stage's merge (t2g.shards.merge). `note` joins the summary,
    `meta` the manifests.

    Main parts first, streamed: a streaming stage finishes its summary and side tables
    only once its last chunk is produced (and `result.side` may read each side table
    only when it is written). Then the side artifacts, and the main manifest last: a
    finished main artifact implies finished side artifacts."""
    meta = {**manifest_meta(stage, config, upstream), **(meta or {})}
    writer = store.writer(stage, key)
    for table in [result.main] if isinstance(result.main, pa.Table) else result.main:
        writer.add(table)
    result.summary.update(note or {})
    if why := never_cached(stage, config):
        result.summary["never_cached"] = why
    side = {
        name: store.write(f"{stage}-{name}", key, table, meta={**meta, "summary": result.summary})
        for name, table in result.side.items()
    }
    if result.model_dir is not None:
        writer.add_dir(result.model_dir)
        meta["kind"] = "model"
    meta.update(
        summary=result.summary, side={n: r.to_dict() for n, r in side.items()}, stage_s=round(time.time() - started, 3)
    )
    ref = writer.commit(meta, result.files)
    return Outcome(ref, False, result.summary, side, time.time() - started)


def manifest_meta(stage: str, config: Any, upstream: Mapping[str, ArtifactRef]) -> dict[str, Any]:
    """What every manifest of a stage's artifact records about how it was made."""
    return {
        "config": config_dict(config),
        "upstream": [u.to_dict() for u in upstream.values()],
        "inputs": {param: ref.key for param, ref in upstream.items()},
        "code_version": registered(stage).code_version(),
        "t2g_version": __version__,
    }
