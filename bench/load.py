"""Load: collect → extract(gold) → filter over 200,000 toy-world documents through the
real runner and a local store, in a fresh child process, reporting its peak RSS (the
promise: under 2 GB) and throughput (documents/s over the three stages).

    python -m bench load           # T2G_LOAD_DOCS=20000 for a quick look
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

N_DOCS = int(os.environ.get("T2G_LOAD_DOCS", "200000"))
LIMIT_MB = 2048

_CHILD = r"""
import json, resource, sys, time
from t2g.config import load_recipe
from t2g.runner import execute
from t2g.store import Store

n, root, config = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# One toy-world source of n documents; the tiny recipe's other settings.
recipe = load_recipe(config, overrides=[
    "collect.sources=[{name: load, kind: toyworld, split: pool, n: %d, seed: 11}]" % n,
])
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


def run() -> dict:
    from pathlib import Path

    config = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
    with tempfile.TemporaryDirectory(prefix="t2g-load-") as root:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(N_DOCS), root, config], capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"load child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "documents": N_DOCS,
        "peak_rss_mb": child["peak_rss_mb"],
        "peak_rss_limit_mb": LIMIT_MB,
        "under_limit": child["peak_rss_mb"] < LIMIT_MB,
        "docs_per_s": round(N_DOCS / child["total_s"], 1),
        "stages_s": child["total_s"],
        "process_wall_s": round(wall, 2),
        "stages": child["stages"],
        "machine": f"{os.cpu_count()} CPUs (shared), peak RSS = ru_maxrss of a fresh child process",
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
