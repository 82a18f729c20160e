"""What the fault tests share: an uninterrupted reference run, digest comparison, and
the audit that no unfinished artifact was ever used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from t2g.config import load_recipe
from t2g.runner import execute
from t2g.store import Store
from tests.support.flowrun import SMALL, TINY, t2g_cmd

DATA = ("collect", "extract", "filter", "reason")


def reference(tmp: Path, extra: list[str], until: str) -> dict[str, dict]:
    """Each stage's manifest from one uninterrupted run without Prefect (runner.execute)."""
    recipe = load_recipe(TINY, overrides=[*SMALL, *extra])
    store = Store(f"file://{tmp}")
    upstream, out = [], {}
    for stage in DATA[: DATA.index(until) + 1]:
        outcome = execute(stage, getattr(recipe, stage), upstream, store)
        upstream = [outcome.ref]
        out[stage] = store.manifest(stage, outcome.ref.key)
    return out


def reread_digest(store: Store, stage: str, key: str) -> str:
    """A digest of the rows as read back through the manifest's part list."""
    import hashlib

    from t2g.store import table_digest

    h = hashlib.sha256()
    for part in store.iter_parts(stage, key):
        h.update(table_digest(part).encode())
    return h.hexdigest()


def same_digests(store: Store, want: dict[str, dict], ref_store: Store) -> dict[str, str]:
    """Asserts the store holds each reference artifact, equal in key, rows and manifest
    digest, and that its rows read back equal the reference's rows read back; returns
    stage -> digest (shortened)."""
    got = {}
    for stage, m in want.items():
        have = store.manifest(stage, m["key"])
        assert (have["rows"], have["digest"]) == (m["rows"], m["digest"]), stage
        assert reread_digest(store, stage, m["key"]) == reread_digest(ref_store, stage, m["key"]), stage
        got[stage] = m["digest"][:12]
    return got


def audit_upstreams(store_dir: Path) -> int:
    """Every finished artifact names upstream artifacts that are finished too, with the
    rows it read; returns how many manifests were checked."""
    store = Store(f"file://{store_dir}")
    n = 0
    for manifest in store_dir.glob("*/*/_manifest.json"):
        m = json.loads(manifest.read_text())
        for up in m.get("upstream", []):
            assert store.has(up["stage"], up["key"]), f"{manifest} read an unfinished {up['stage']}/{up['key']}"
            assert store.manifest(up["stage"], up["key"])["rows"] == up["rows"], manifest
        n += 1
    return n


def booby_trap(store_dir: Path) -> int:
    """Make any read of something a manifest does not list fail loudly or change the
    result: parts of unfinished artifacts become garbage, and every finished artifact
    gets a decoy part with rows of its own schema that no manifest lists. If a reader
    used either, the rerun would fail or its digests would differ from the reference.
    Returns how many files were planted or spoiled."""
    import pyarrow.parquet as pq

    n = 0
    for folder in {p.parent for p in store_dir.glob("*/*/*")}:
        manifest = folder / "_manifest.json"
        if not manifest.exists():
            for part in folder.glob("part-*.parquet"):
                part.write_bytes(b"not parquet: a reader touched an unfinished artifact")
                n += 1
            continue
        parts = json.loads(manifest.read_text())["parts"]
        if parts:
            table = pq.read_table(folder / parts[0]["name"])
            pq.write_table(table.slice(0, 1), folder / "part-09999.parquet")
            n += 1
    return n


def half_written(store_dir: Path) -> list[Path]:
    return sorted(
        {p.parent for p in store_dir.glob("*/*/part-*.parquet") if not (p.parent / "_manifest.json").exists()}
    )


def run_until(
    args: list[str], cwd: Path, env: dict[str, str], kill_when: Callable[[], bool], timeout: float = 300
) -> str:
    """Start `t2g ARGS`; SIGKILL its process group once `kill_when()` is true. Returns
    "killed" or "finished (exit N)" when it ended before the kill point."""
    return kill_at([t2g_cmd(), *args], cwd, kill_when, env={**os.environ, **env}, timeout=timeout, poll=0.005)


def kill_at(
    cmd: list[str], cwd: Path, kill_when: Callable[[], bool], env: dict[str, str] | None = None,
    timeout: float = 300, poll: float = 0.05,
) -> str:  # fmt: skip
    """Start `cmd` in a session of its own; SIGKILL its process group once `kill_when()`
    is true. Returns "killed", or "finished (exit N)" when it ended first; a run that
    does neither within `timeout` fails the test."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if kill_when():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return "killed"
            time.sleep(poll)
        if proc.poll() is None:
            raise AssertionError("the run neither finished nor reached its kill point")
        return f"finished (exit {proc.returncode})"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
