"""Run one stage against the store: the part of "a cached stage" that is not Prefect.

`stage_key` is the artifact key and the Prefect cache key; `execute` reuses a finished
artifact when the store has one (even if Prefect's own cache was wiped), otherwise runs
the stage and writes its artifacts, side artifacts first and the main one last, so a
finished main artifact implies finished side artifacts.
"""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Sequence

import pyarrow as pa
from pydantic import BaseModel

from t2g import __version__
from t2g.stage import cache_key, code_version
from t2g.stages import STAGES
from t2g.store import ArtifactRef, Store


@dataclass
class Outcome:
    ref: ArtifactRef
    hit: bool
    summary: dict[str, Any] = field(default_factory=dict)
    side: dict[str, ArtifactRef] = field(default_factory=dict)
    seconds: float = 0.0


def _config_dict(config: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)


def load_input(store: Store, ref: ArtifactRef) -> pa.Table | Path:
    """A table artifact as a table; a model artifact as a local folder to load it from."""
    if store.manifest(ref.stage, ref.key).get("kind") == "model":
        return store.materialize(ref.stage, ref.key)
    return store.read(ref.stage, ref.key)


def stage_key(stage: str, config: BaseModel | dict[str, Any], upstream: Sequence[ArtifactRef]) -> str:
    spec = STAGES[stage]
    return cache_key(stage, _config_dict(config), [u.key for u in upstream], code_version(*spec.modules))


def execute(stage: str, config: BaseModel, upstream: Sequence[ArtifactRef], store: Store) -> Outcome:
    spec = STAGES[stage]
    key = stage_key(stage, config, upstream)
    started = time.time()
    existing = store.ref(stage, key)
    if existing is not None:
        manifest = store.manifest(stage, key)
        side = {s: ref for s in spec.side if (ref := store.ref(f"{stage}-{s}", key)) is not None}
        return Outcome(existing, True, manifest.get("summary", {}), side, time.time() - started)

    inputs = [load_input(store, u) for u in upstream]
    result = spec.load()(config, *inputs)
    meta = {
        "config": _config_dict(config),
        "upstream": [u.to_dict() for u in upstream],
        "code_version": code_version(*spec.modules),
        "t2g_version": __version__,
    }
    # Main parts first, streamed; a streaming stage finishes its summary and side tables
    # only once its last chunk is produced. Then the side artifacts, and the main
    # manifest last: a finished main artifact implies finished side artifacts.
    writer = store.writer(stage, key)
    for table in [result.main] if isinstance(result.main, pa.Table) else result.main:
        writer.add(table)
    side = {
        name: store.write(f"{stage}-{name}", key, table, meta={**meta, "summary": result.summary})
        for name, table in result.side.items()
    }
    if result.model_dir is not None:
        writer.add_dir(result.model_dir)
        meta["kind"] = "model"
    meta.update(summary=result.summary, side={n: r.to_dict() for n, r in side.items()}, stage_s=round(time.time() - started, 3))
    ref = writer.commit(meta, result.files)
    return Outcome(ref, False, result.summary, side, time.time() - started)
