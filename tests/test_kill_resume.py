"""SIGKILL the pipeline in the middle of a stage, rerun: finished stages are reused, the
interrupted one completes, nothing half-written is ever visible, and the artifacts equal
an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from t2g.config import load_recipe
from t2g.runner import execute
from t2g.store import Store
from tests.flowrun import SMALL, TINY, run_t2g, small_args, t2g_cmd

# Big enough that collect writes two parts (10,000 rows each) with seconds in between.
BIG = ["collect.sources.1.n=11000"]


def _half_written(store: Path) -> Path | None:
    for part in store.glob("*/*/part-*.parquet"):
        if not (part.parent / "_manifest.json").exists():
            return part.parent
    return None


def _run_and_kill(tmp_path: Path, env: dict[str, str], when) -> str:
    proc = subprocess.Popen(
        [t2g_cmd(), *small_args(*BIG)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    store = tmp_path / ".t2g" / "store"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            what = when(store)
            if what:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return what
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    raise AssertionError(f"the kill point never came (exit code {proc.returncode})")


def _mid_collect(store: Path) -> str | None:
    folder = _half_written(store)
    return f"half-written {folder}" if folder is not None else None


def _after_collect(store: Path) -> str | None:
    done = list(store.glob("collect/*/_manifest.json"))
    return f"after {done[0]}" if done else None


def test_sigkill_mid_stage_then_rerun(tmp_path, prefect_server):
    env = prefect_server.env()
    first = _run_and_kill(tmp_path, env, _mid_collect)
    store_dir = tmp_path / ".t2g" / "store"
    assert "collect" in first and not list(store_dir.glob("collect/*/_manifest.json"))

    second = _run_and_kill(tmp_path, env, _after_collect)
    assert "collect" in second

    final = run_t2g(small_args(*BIG), tmp_path, env)
    assert final.returncode == 0, final.output
    assert final.stages["collect"]["hit"] and not final.stages["filter"]["hit"], final.output
    assert _half_written(store_dir) is None

    # The same stages run once, uninterrupted and without Prefect, give the same data.
    recipe = load_recipe(TINY, overrides=[*SMALL, *BIG])
    ref_store = Store(f"file://{tmp_path}/reference")
    upstream = []
    store = Store(f"file://{store_dir}")
    for stage in ("collect", "extract", "filter"):
        outcome = execute(stage, getattr(recipe, stage), upstream, ref_store)
        upstream = [outcome.ref]
        got = store.manifest(stage, final.stages[stage]["uri"].rsplit("/", 1)[1])
        want = ref_store.manifest(stage, outcome.ref.key)
        assert (got["key"], got["rows"], got["digest"]) == (want["key"], want["rows"], want["digest"]), stage
