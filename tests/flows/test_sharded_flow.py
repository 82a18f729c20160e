"""Extraction and reasoning inside the data flow (`t2g run`), sharded: a SIGKILL during
extraction costs only the shards in flight, the rerun generates only the unfinished
shards, and a third run is all cache hits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.faultkit import kill_at
from tests.support.flowrun import run_t2g, small_args, t2g_cmd


def _args(model: Path) -> list[str]:
    return small_args(
        # Few documents, small shards: many shards, seconds of generation.
        "collect.sources.0.n=5",
        "collect.sources.1.n=32",
        "collect.sources.2.n=3",
        "extract.backend=transformers",
        f"extract.model={model}",
        "extract.splits=[pool]",
        "extract.shard_size=5",
        "extract.max_new_tokens=64",
        "extract.device=cpu",
        "filter.min_entities=0",
        "reason.thinking=true",
        f"reason.model={model}",
        "reason.max_new_tokens=16",
        "reason.shard_size=16",
        "reason.device=cpu",
        until="reason",
    )


def _manifests(store: Path, stage: str) -> list[Path]:
    return list(store.glob(f"{stage}/*/_manifest.json"))


def test_kill_during_extraction_then_rerun_reuses_finished_shards(tmp_path, prefect_server, tiny_model_dir):
    env = prefect_server.env()
    store = tmp_path / ".t2g" / "store"
    kill_at([t2g_cmd(), *_args(tiny_model_dir)], tmp_path, lambda: len(_manifests(store, "extract-shard")) >= 2,
            env={**os.environ, **env}, timeout=300)  # fmt: skip
    finished = len(_manifests(store, "extract-shard"))
    assert finished >= 2 and not _manifests(store, "extract"), "the kill came too late"

    second = run_t2g(_args(tiny_model_dir), tmp_path, env)
    assert second.returncode == 0, second.output
    assert {s: v["hit"] for s, v in second.stages.items()} == {
        "collect": True,
        "extract": False,
        "filter": False,
        "reason": False,
    }
    (merged,) = _manifests(store, "extract")
    summary = json.loads(merged.read_text())["summary"]
    total = summary["shards"]
    # Shards cut the stage's input (~40 documents / 5); the stage labels the pool split only.
    assert total >= 7 and len(_manifests(store, "extract-shard")) == total
    # Only the shards unfinished at the kill were generated again.
    assert summary["shards_reused"] >= finished and summary["shards_reused"] + summary["shards_generated"] == total
    print(
        f"killed with {finished}/{total} shards done; rerun reused {summary['shards_reused']}, generated {summary['shards_generated']}"
    )
    assert summary["rows_in"] == second.stages["collect"]["rows"] and summary["not_selected"] > 0
    assert second.stages["extract"]["rows"] == summary["rows_in"] - summary["not_selected"]

    # The UI showed the shards' progress.
    prefect = str(Path(sys.executable).with_name("prefect"))
    shown = subprocess.run(
        [prefect, "artifact", "inspect", "t2g-extract-progress"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and "tokens/s" in shown.stdout and f"{total}/{total} shards" in shown.stdout, (
        shown.stdout
    )

    # Reasoning ran sharded too; with a random tiny model every answer lacks a closed
    # think block, and each dropped row says so.
    (reason_manifest,) = _manifests(store, "reason")
    reason_summary = json.loads(reason_manifest.read_text())["summary"]
    assert reason_summary["rows_in"] == reason_summary["rows_out"] + sum(reason_summary["reasons"].values())
    assert _manifests(store, "reason-dropped")

    third = run_t2g(_args(tiny_model_dir), tmp_path, env)
    print(f"rerun after kill {second.seconds:.1f} s, cached rerun {third.seconds:.1f} s")
    assert third.returncode == 0, third.output
    assert all(s["hit"] for s in third.stages.values()), third.output


def test_split_digest_and_summary_merge():
    import pyarrow as pa

    from t2g import shards

    table = pa.table({"id": [str(i) for i in range(10)]})
    parts = shards.split(table, 4)  # cut by content (tests/t2g/test_shards_content.py)
    assert sorted(pa.concat_tables(parts).column("id").to_pylist()) == sorted(table.column("id").to_pylist())
    assert shards.split(table.slice(0, 0), 4)[0].num_rows == 0  # an empty input is one empty shard
    # A shard's digest is its rows': the same rows cut differently give the same digest.
    assert shards.digest(parts[1]) == shards.digest(pa.table({"id": parts[1].column("id").to_pylist()}))
    assert shards.digest(parts[0]) != shards.digest(parts[1])
    merged = shards.merge_summaries(
        [
            {"rows_in": 4, "errors": {"a": 1}, "backend": "openai", "generate_s": 1.5},
            {"rows_in": 2, "errors": {"a": 1, "b": 2}, "backend": "openai", "generate_s": 0.25},
        ]
    )
    assert merged == {"rows_in": 6, "errors": {"a": 2, "b": 2}, "backend": "openai", "generate_s": 1.75}
