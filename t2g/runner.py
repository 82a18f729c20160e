"""Run one stage against the store: the part of "a cached stage" that is not Prefect.

`stage_key` is the artifact key and the Prefect cache key; `execute` reuses a finished
artifact when the store has one (even if Prefect's own cache was wiped), otherwise runs
the stage and writes its artifacts, side artifacts first and the main one last, so a
finished main artifact implies finished side artifacts.

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
from typing import Any, Union

import pyarrow as pa
from pydantic import BaseModel

from t2g import __version__
from t2g.checkpoints import checkpoint_store
from t2g.fingerprint import run_nonce
from t2g.launch import LaunchError, launch
from t2g.stage import cache_key
from t2g.stages import registered
from t2g.store import ArtifactRef, Store

# A stage's inputs by parameter name. A plain list is also taken (scripts, tests): it is
# matched to the stage's wired inputs in their declared order.
Upstream = Union[Mapping[str, ArtifactRef], Sequence[ArtifactRef]]


@dataclass
class Outcome:
    ref: ArtifactRef
    hit: bool
    summary: dict[str, Any] = field(default_factory=dict)
    side: dict[str, ArtifactRef] = field(default_factory=dict)
    seconds: float = 0.0


def config_dict(config: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)


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
    inputs = named(stage, config, upstream)
    wiring = [f"{param}={ref.key}" for param, ref in sorted(inputs.items())] + external_wiring(stage, config)
    return cache_key(stage, config_dict(config), wiring, registered(stage).code_version())


def external_wiring(stage: str, config: Any) -> list[str]:
    """The fingerprints of what the section names outside the store, as key parts (none
    for a stage that names nothing, so its key is what it was before fingerprints). One
    without a fingerprint gets this run's nonce: the same key all through the run, and
    no later run finds it."""
    return [
        f"external:{name}={fp if fp is not None else 'unpinned:' + run_nonce()}"
        for name, fp in sorted(registered(stage).externals(config).items())
    ]


def never_cached(stage: str, config: Any) -> list[str]:
    """Why the stage is never a cache hit under this section, one line per input."""
    return [f"{name} has no pinned revision: never cached" for name, fp in sorted(registered(stage).externals(config).items()) if fp is None]


def execute(stage: str, config: BaseModel, upstream: Upstream, store: Store) -> Outcome:
    started = time.time()
    upstream = named(stage, config, upstream)
    key = stage_key(stage, config, upstream)
    done = finished(stage, key, store, started)
    if done is not None:
        return done
    if getattr(config, "launch", None) is not None:
        return launched(stage, config, upstream, store, key, started)
    return run_here(stage, config, upstream, store)


def finished(stage: str, key: str, store: Store, started: float, hit: bool = True) -> Outcome | None:
    """The store's finished artifact (and its side artifacts) as an outcome; None when
    there is none."""
    existing = store.finished(stage, key)
    if existing is None:
        return None
    manifest = store.manifest(stage, key)
    side = {s: ref for s in registered(stage).side if (ref := store.ref(f"{stage}-{s}", key)) is not None}
    return Outcome(existing, hit, manifest.get("summary", {}), side, time.time() - started)


def launched(stage: str, config: BaseModel, upstream: Mapping[str, ArtifactRef], store: Store, key: str, started: float) -> Outcome:
    """Run the stage under `accelerate launch` (t2g/launch.py): every rank trains, the main
    rank writes the artifact through `run_here` (t2g/rank.py), and this process reads it back."""
    launch(stage, config, upstream, store, key)
    outcome = finished(stage, key, store, started, hit=False)
    if outcome is None:
        raise LaunchError(f"{stage}: the launched run exited cleanly but wrote no artifact at {store.uri(stage, key)}")
    return outcome


def run_here(
    stage: str, config: BaseModel, upstream: Upstream, store: Store, write: bool = True,
    note: dict[str, Any] | None = None,
) -> Outcome | None:  # fmt: skip
    """Run the stage in this process and write its artifacts. A launched stage's ranks
    other than the main one pass `write=False`: they train along and write nothing.
    `note` joins the summary (what the launch adds: how many processes trained)."""
    spec = registered(stage)
    started = time.time()
    upstream = named(stage, config, upstream)
    key = stage_key(stage, config, upstream)
    inputs = load_inputs(stage, upstream, store)
    # Training stages mirror their checkpoints to the store (a crashed worker's disk is
    # gone); through a context, not the config, so the key stays the same.
    with checkpoint_store(store) as checkpoints:
        result = spec.load()(config, **inputs)
    if not write:
        return None
    meta = manifest_meta(stage, config, upstream)
    # Main parts first, streamed; a streaming stage finishes its summary and side tables
    # only once its last chunk is produced. Then the side artifacts, and the main
    # manifest last: a finished main artifact implies finished side artifacts.
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
    meta.update(summary=result.summary, side={n: r.to_dict() for n, r in side.items()}, stage_s=round(time.time() - started, 3))
    ref = writer.commit(meta, result.files)
    checkpoints.discard()  # the trained model is an artifact now
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
