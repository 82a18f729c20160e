"""Load: collect → extract(gold) → filter over 200,000 toy-world documents through the
real runner and a local store, in a fresh child process, reporting its peak RSS (the
promise: under 2 GB) and throughput (documents/s over the three stages).

    python -m bench load           # T2G_LOAD_DOCS=20000 for a quick look
    python -m bench --smoke load   # 500 documents

The recipe is the benchmark's own (`recipe`), not configs/tiny.yaml: what the demo's
extract needs (a teacher model) is not what this measures, and a change to the demo must
not change or break this figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from t2g.config import validate_recipe

N_DOCS = int(os.environ.get("T2G_LOAD_DOCS", "200000"))
SMOKE_DOCS = 500
LIMIT_MB = 2048


def recipe(n_docs: int) -> dict[str, Any]:
    """One toy-world source of `n_docs` documents, labelled with the world's own gold (no
    model), filter at its defaults. near_duplicate_threshold 0.95: as the recorded figures
    had it (the demo's value when this benchmark borrowed the demo recipe)."""
    data = {
        "name": "bench-load",
        "description": "the load benchmark: one toy-world source, gold labels",
        "collect": {
            "sources": [{"name": "load", "kind": "toyworld", "split": "pool", "n": n_docs, "seed": 11}],
            "near_duplicate_threshold": 0.95,
        },
        "extract": {"backend": "gold"},
    }
    validate_recipe(data, source="bench.load.recipe")  # fails here, not in the child
    return data


_CHILD = r"""
import json, resource, sys, time
from t2g.config import validate_recipe
from t2g.runner import execute
from t2g.store import Store

data, root = json.loads(sys.argv[1]), sys.argv[2]
recipe = validate_recipe(data, source="bench.load.recipe")
store = Store(f"file://{root}")
upstream, stages = [], {}
started = time.perf_counter()
for stage in ("collect", "extract", "filter"):
    t = time.perf_counter()
    out = execute(stage, getattr(recipe, stage), upstream, store)
    upstream = [out.ref]
    stages[stage] = {"rows": out.ref.rows, "s": round(time.perf_counter() - t, 2),
                     "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
total = time.perf_counter() - started
print(json.dumps({"stages": stages, "total_s": round(total, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def run(smoke: bool = False, n_docs: int | None = None) -> dict[str, Any]:
    """The load at `n_docs` documents (default: the smoke size or T2G_LOAD_DOCS)."""
    n_docs = n_docs or (SMOKE_DOCS if smoke else N_DOCS)
    with tempfile.TemporaryDirectory(prefix="t2g-load-") as root:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(recipe(n_docs)), root],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"load child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "documents": n_docs,
        "peak_rss_mb": child["peak_rss_mb"],
        "peak_rss_limit_mb": LIMIT_MB,
        "under_limit": child["peak_rss_mb"] < LIMIT_MB,
        "docs_per_s": round(n_docs / child["total_s"], 1),
        "stages_s": child["total_s"],
        "process_wall_s": round(wall, 2),
        "stages": child["stages"],
        "machine": f"{os.cpu_count()} CPUs (shared), peak RSS = ru_maxrss of a fresh child process",
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
