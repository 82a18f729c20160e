"""SIGKILL the pipeline in the middle of a stage, rerun: finished stages are reused, the
interrupted one completes, nothing half-written is ever visible, and the artifacts equal
an uninterrupted run's. A sampling stage killed mid-way keeps the answers it had: the
rerun asks the model only for the others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from t2g.config import load_recipe
from t2g.llm.cache import CHUNK
from t2g.runner import execute
from t2g.store import Store
from tests.flows.test_pipeline_tiny import CUT
from tests.support.flowrun import SMALL, TINY, run_t2g, small_args, t2g_cmd

# Big enough that collect writes two parts (10,000 rows each) with seconds in between.
BIG = ["collect.sources.1.n=11000"]


def _half_written(store: Path) -> Path | None:
    for part in store.glob("*/*/part-*.parquet"):
        if not (part.parent / "_manifest.json").exists():
            return part.parent
    return None


def _run_and_kill(tmp_path: Path, env: dict[str, str], when, args: list[str] | None = None) -> str:
    proc = subprocess.Popen(
        [t2g_cmd(), *(args or small_args(*BIG))],
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


# Round 2's sampling from an untrained student: 6 answers to each of ~115 documents, more
# than one chunk of the LLM cache (each chunk is written as soon as it is answered). No
# answer of an untrained model reaches min_reward 1, so every answer lands in the side table.
SAMPLING = [*CUT, "sample={k: 6, max_new_tokens: 32, batch_size: 128, min_reward: 1.0}", "rounds=[{}]"]


def _sample_args() -> list[str]:
    args = ["run", "--config", str(TINY), "--until", "sample-2"]
    for item in SAMPLING:
        args += ["--set", item]
    return args


def _answers(store: Path) -> list[Path]:
    return sorted(store.glob("_llm_cache/*/*.json"))


def _first_chunk_answered(store: Path) -> str | None:
    n = len(_answers(store))
    return f"{n} answers cached" if n >= CHUNK and not list(store.glob("sample-2/*/_manifest.json")) else None


def test_sigkill_mid_sampling_then_rerun_asks_only_for_the_rest(tmp_path, prefect_server):
    env = prefect_server.env()
    store_dir = tmp_path / ".t2g" / "store"
    _run_and_kill(tmp_path, env, _first_chunk_answered, _sample_args())
    kept = [json.loads(p.read_text())["result"]["text"] for p in _answers(store_dir)]
    assert len(kept) >= CHUNK and not list(store_dir.glob("sample-2/*/_manifest.json"))

    final = run_t2g(_sample_args(), tmp_path, env)
    assert final.returncode == 0, final.output[-4000:]
    assert final.stages["grpo"]["hit"] and not final.stages["sample-2"]["hit"], final.output[-3000:]
    key = final.stages["sample-2"]["uri"].rsplit("/", 1)[1]
    summary = Store(f"file://{store_dir}").manifest("sample-2", key)["summary"]
    # Only the answers the killed run did not have were generated again.
    assert (summary["llm"]["cache_hits"], summary["llm"]["cache_misses"]) == (len(kept), summary["samples"] - len(kept))
    assert summary["samples"] == 6 * summary["documents"] > len(kept)
    assert summary["documents"] == summary["accepted"] + summary["rejected"]
    # ...and the kept ones are the answers the stage judged.
    side = Store(f"file://{store_dir}").read("sample-2-rejected", key)
    assert side.num_rows == summary["samples"] and not Counter(kept) - Counter(side.column("completion").to_pylist())
