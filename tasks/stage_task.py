"""One task factory for every stage, and one options function for every t2g task (stage,
LLM shard, row shard): retries on transient errors only, JSON-only result storage, the UI
tags, and the GPU slot for the stages the recipe names.

The cache key is t2g's own key of the node (stage, config section, upstream keys, code
version), computed when the flow planned the recipe (Node.key, t2g.keys.node_key) and
passed to the task as its `key`, so Prefect and the store agree on what is done. The key
is offered to Prefect only once the store holds the artifact: Prefect never caches a
result the store does not have, and a wiped Prefect database still finds finished work
in the store (the task body returns the existing artifact at once).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff

from t2g import counts
from t2g.config import Recipe
from t2g.dag import section
from t2g.llm import use_secrets
from t2g.llm.cache import use_cache
from t2g.runner import Outcome, execute
from t2g.stages import registered
from t2g.store import ArtifactRef, StoreError
from tasks.gpu import gpu_slot, stage_tags
from tasks.results import json_only_result_storage
from tasks.secrets import secret
from tasks.storage import open_llm_cache, open_store

# Transient: worth a retry. Anything else (a bad recipe, bad data, a bug) fails at once.
TRANSIENT = (StoreError, ConnectionError, TimeoutError)


def refs(upstream: dict[str, dict[str, Any]]) -> dict[str, ArtifactRef]:
    """Task parameters (JSON reference dicts, by input name) as references."""
    return {param: ArtifactRef.from_dict(u) for param, u in upstream.items()}


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TRANSIENT:
        return True
    except BaseException:
        return False
    return False


def options(t: Task, recipe: Recipe, stage: str, *tags: str) -> Task:
    """`t` with the recipe's retry policy and t2g's result storage and tags."""
    return t.with_options(
        # A saved block (Prefect insists): refuses any stored result that is not plain JSON.
        result_storage=json_only_result_storage(),
        retries=recipe.retries.attempts,
        retry_delay_seconds=exponential_backoff(backoff_factor=recipe.retries.backoff_s),
        retry_jitter_factor=0.5,
        retry_condition_fn=retry_transient,
        tags=stage_tags(recipe, stage) | set(tags),
    )


def prefect_key(recipe: Recipe, name: str, key: str) -> str:
    """The Prefect cache key of an artifact in the recipe's store. The store is part of
    it: Prefect returns the first run's recorded reference, and a run on another store
    holding the same artifact (a copy, a local and an S3 store) must get its own."""
    return f"t2g-{name}-{key}-{hashlib.sha256(recipe.store.encode()).hexdigest()[:12]}"


def cache_key_fn(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    stage, key = parameters["stage"], parameters["key"]
    recipe: Recipe = parameters["recipe"]
    try:
        done = open_store(recipe.store).finished(stage, key) is not None  # verified: a corrupt one is recomputed
    except (StoreError, ValueError):
        return None
    return prefect_key(recipe, stage, key) if done else None


class _ToRunLog(logging.Handler):
    """t2g's own log records (progress of long phases, store warnings) into the task run's
    log: the terminal and the UI both show them, whatever started the run. Only records of
    the thread that runs the task: shards run side by side in threads."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.run_logger = get_run_logger()
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.run_logger.log(record.levelno, "%s", record.getMessage())


_forwarding = {"active": 0, "lock": threading.Lock()}


@contextlib.contextmanager
def t2g_logs_to_run() -> Iterator[None]:
    logger = logging.getLogger("t2g")
    handler = _ToRunLog()
    with _forwarding["lock"]:
        if _forwarding["active"] == 0:
            # The run logger prints to the console already: a record that also reached
            # the root logger's handlers would show twice.
            logger.propagate = False
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
        _forwarding["active"] += 1
        logger.addHandler(handler)
    try:
        yield
    finally:
        with _forwarding["lock"]:
            logger.removeHandler(handler)
            _forwarding["active"] -= 1
            if _forwarding["active"] == 0:
                logger.propagate = True


@contextlib.contextmanager
def stage_context(recipe: Recipe, stage: str) -> Iterator[None]:
    """What a stage (or a shard of one) runs inside: GPU stages hold a slot of the `gpu`
    limit (tasks/gpu.py), t2g's log reaches the run's, LLM stages ask the recipe's response
    cache first and read their key's Secret block through this task, once: every generate
    call of a stage asks for the key, and each read is a round trip to the Prefect API."""
    with gpu_slot(recipe, stage), t2g_logs_to_run(), use_cache(open_llm_cache(recipe)), use_secrets(cache(secret)):
        yield


def _run(recipe: Recipe, stage: str, key: str, upstream: dict[str, dict[str, Any]]) -> dict[str, Any]:
    with stage_context(recipe, stage):
        outcome = execute(stage, section(recipe, stage), refs(upstream), open_store(recipe.store), key)
    return publish(stage, outcome)


@cache
def stage_task(stage: str) -> Task:
    """The cached Prefect task of node `stage` (one per node name, so the UI groups its runs:
    a later round's `sft-2` is its own task)."""
    return task(
        _run,
        name=stage,
        task_run_name=f"{stage} [{{recipe.name}}]",
        cache_key_fn=cache_key_fn,
        persist_result=True,
        result_serializer="json",
        # Under Prefect's print capture the trainers' dataset preparation floods the run
        # log with bytecode listings (and every progress print would be an API call).
        log_prints=registered(stage).log_prints,
    )


def run_stage(recipe: Recipe, stage: str, key: str, upstream: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run node `stage` (its planned `key`) as its task with the recipe's options; returns
    its reference, saying `hit` also when Prefect served its own cached record (which holds
    the first run's)."""
    state = options(stage_task(stage), recipe, stage)(recipe, stage, key, upstream, return_state=True)
    ref = state.result()  # raises the stage's error if it failed
    return {**ref, "hit": bool(ref.get("hit")) or state.name == "Cached"}


def publish(stage: str, outcome: Outcome) -> dict[str, Any]:
    """Log the outcome, publish the stage's counts and summary, return the JSON reference."""
    logger = get_run_logger()
    summary = outcome.summary
    verb = "cache hit: reused" if outcome.hit else "wrote"
    logger.info("%s %s (%d rows) in %.1f s", verb, outcome.ref.uri, outcome.ref.rows, outcome.seconds)
    if not outcome.hit:
        side = {name: ref.rows for name, ref in outcome.side.items()}
        rows = counts.table(summary, outcome.ref.rows, side, registered(stage).row_wise)
        create_table_artifact(rows, key=f"t2g-{stage}-counts", description=f"{stage}: rows in, each reason, rows out")
        lines = [f"## {stage}", "", f"- output: `{outcome.ref.uri}` ({outcome.ref.rows} rows)"]
        lines += [f"- {name}: `{ref.uri}` ({ref.rows} rows)" for name, ref in outcome.side.items()]
        lines += [f"- {k}: {v}" for k, v in summary.items() if k not in ("reasons", "per_source", "table")]
        lines.append(f"- took {outcome.seconds:.1f} s")
        create_markdown_artifact("\n".join(lines), key=f"t2g-{stage}-summary", description=f"{stage} summary")
    return {**outcome.ref.to_dict(), "hit": outcome.hit}


def publish_outputs(recipe: Recipe, ref: dict[str, Any]) -> None:
    """What a stage saved for people to look at, as UI artifacts: plots (PNG, inlined),
    its markdown report, and its table (the evaluation's F1 table). Called after every
    node, cache hit or not, so the latest run always shows them."""
    store = open_store(recipe.store)
    stage = ref["stage"]
    manifest = store.manifest(stage, ref["key"])
    for name in sorted(manifest.get("files") or {}):
        if name.endswith(".png"):
            data = base64.b64encode(store.read_file(stage, ref["key"], name)).decode()
            key = f"t2g-{stage}-" + re.sub(r"[^a-z0-9-]+", "-", name[:-4].lower())  # Prefect's key alphabet
            create_markdown_artifact(f"## {stage}: {name}\n\n![{name}](data:image/png;base64,{data})\n\n`{ref['uri']}/{name}`",
                                     key=key, description=f"{stage}: {name}")  # fmt: skip
        elif name == "report.md":
            md = store.read_file(stage, ref["key"], name).decode()
            create_markdown_artifact(md, key=f"t2g-{stage}-report", description=f"{stage} report")
    table = (manifest.get("summary") or {}).get("table")
    if table:
        create_table_artifact(table, key=f"t2g-{stage}-table", description=f"{stage}: one row per model")
