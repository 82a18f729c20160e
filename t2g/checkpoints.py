"""Training checkpoints that outlive the machine: each complete checkpoint is mirrored to
the store, so a crashed worker whose local disk is gone resumes on a new one.

Layout: `_checkpoints/<stage>/<fingerprint>/checkpoint-N/...` (the run's work folder
names; the leading "_" keeps it apart from artifacts), each checkpoint's files first and
`_complete.json` (its file list) last: a checkpoint cut off mid-upload has no marker and
is never fetched. The store keeps at most `save_total_limit` checkpoints, like the local
folder.

Which store: the runner wraps a stage in `checkpoint_store(store)` (a context variable,
so the stage functions' signatures and cache keys stay as they are). Outside it (a stage
called directly, the unit tests) checkpoints stay local, as before.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from t2g.store import Store

PREFIX = "_checkpoints"
MARKER = "_complete.json"
# trl writes trainer_state.json last: a local checkpoint without it is incomplete.
LOCAL_MARKER = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

log = logging.getLogger(__name__)


@dataclass
class CheckpointStore:
    store: Store
    # Prefixes this stage run wrote or read, so the runner can drop them once the trained
    # model is an artifact.
    used: set[str] = field(default_factory=set)

    def discard(self) -> None:
        for prefix in sorted(self.used):
            self.store.delete_tree(prefix)
        self.used.clear()


_current: ContextVar[CheckpointStore | None] = ContextVar("t2g_checkpoint_store", default=None)


@contextmanager
def checkpoint_store(store: Store) -> Iterator[CheckpointStore]:
    """Training inside mirrors its checkpoints to `store` and resumes from them."""
    session = CheckpointStore(store)
    token = _current.set(session)
    try:
        yield session
    finally:
        _current.reset(token)


# --- local folder --------------------------------------------------------------------


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete local checkpoint, or None."""
    if not folder.is_dir():
        return None
    done = [(step, p) for p in folder.iterdir() if (step := _step(p.name)) is not None and (p / LOCAL_MARKER).is_file()]
    return max(done)[1] if done else None


def checkpoint_step(path: Path | None) -> int:
    return _step(path.name) if path is not None else 0


def _step(name: str) -> int | None:
    m = _CHECKPOINT.match(name)
    return int(m.group(1)) if m else None


# --- the store's copy ------------------------------------------------------------------


def remote_prefix(folder: Path) -> str:
    """`<work_dir>/<stage>/<fingerprint>/checkpoints` mirrors to `_checkpoints/<stage>/<fingerprint>`."""
    return f"{PREFIX}/{folder.parent.parent.name}/{folder.parent.name}"


def complete_steps(store: Store, prefix: str) -> dict[int, str]:
    """{step: folder name} of the checkpoints whose upload finished."""
    return {
        step: name
        for rel in store.list_tree(prefix)
        if rel.count("/") == 1 and rel.endswith(f"/{MARKER}")
        and (step := _step(name := rel.split("/")[0])) is not None
    }  # fmt: skip


def upload(store: Store, prefix: str, checkpoint: Path) -> None:
    rel = f"{prefix}/{checkpoint.name}"
    store.delete_tree(rel)  # what a cut-off upload of the same step left
    files = store.put_tree(rel, checkpoint)
    store.put_bytes(f"{rel}/{MARKER}", json.dumps({"files": files}).encode())


def prune(store: Store, prefix: str, keep: int | None) -> None:
    """Keep the newest `keep` complete checkpoints (all when None); drop older ones and
    older cut-off uploads."""
    done = sorted(complete_steps(store, prefix))
    if not done:
        return
    kept = set(done[-keep:] if keep else done)
    names = {rel.split("/")[0] for rel in store.list_tree(prefix)}
    for name in sorted(names):
        step = _step(name)
        if step is not None and step < done[-1] and step not in kept:
            store.delete_tree(f"{prefix}/{name}")


def fetch(store: Store, prefix: str, folder: Path) -> Path | None:
    """Download the store's newest complete checkpoint into `folder` when it is newer than
    the newest local one; returns it, or None when there was nothing newer."""
    done = complete_steps(store, prefix)
    if not done or max(done) <= checkpoint_step(last_checkpoint(folder)):
        return None
    name = done[max(done)]
    files = json.loads(store.get_bytes(f"{prefix}/{name}/{MARKER}"))["files"]
    dest = folder / name
    # Download beside it and rename: a fetch killed half-way leaves no checkpoint-N, and
    # machines fetching into one shared disk do not see each other's partial files.
    tmp = folder / f".{name}.fetch-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    store.get_tree(f"{prefix}/{name}", files, tmp)
    if not (dest / LOCAL_MARKER).is_file():
        shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:  # another machine renamed its copy first
            pass
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- what the trainers call ------------------------------------------------------------


def resume_from(folder: Path) -> Path | None:
    """The checkpoint to resume from: the newest complete one in `folder`, after fetching
    a newer one from the store when training runs inside `checkpoint_store`."""
    session = _current.get()
    if session is not None:
        from accelerate import PartialState

        prefix = remote_prefix(folder)
        session.used.add(prefix)
        # One download per machine: the other ranks then find it on the local disk.
        with PartialState().local_main_process_first():
            fetched = fetch(session.store, prefix, folder)
        if fetched is not None:
            log.info("fetched %s from %s", fetched.name, session.store.loose_uri(prefix))
    return last_checkpoint(folder)


def mirror_callbacks(folder: Path, keep: int | None) -> list:
    """Trainer callbacks that mirror each saved checkpoint to the store; none outside
    `checkpoint_store`."""
    session = _current.get()
    if session is None:
        return []
    from accelerate import PartialState
    from transformers import TrainerCallback

    prefix = remote_prefix(folder)
    session.used.add(prefix)

    class MirrorCheckpoints(TrainerCallback):
        # on_save runs after the trainer wrote the checkpoint and rotated old ones.
        def on_save(self, args, state, control, **kwargs):
            PartialState().wait_for_everyone()  # every rank has written its shards and RNG state
            if state.is_world_process_zero:
                checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if (checkpoint / LOCAL_MARKER).is_file():
                    upload(session.store, prefix, checkpoint)
                    prune(session.store, prefix, keep)
                    log.info("mirrored %s to %s", checkpoint.name, session.store.loose_uri(prefix))
            return control

    return [MirrorCheckpoints()]
