"""Run benchmarks and merge their figures into bench/results.json.

    python -m bench                  # every benchmark in BENCHMARKS
    python -m bench rewards          # just these
    python -m bench think            # an experiment (EXPERIMENTS): run by name only
    python -m bench --smoke [names]  # tiny sizes, seconds each; writes no results

Each benchmark is a module `bench.<name>` with `run(smoke: bool = False) -> dict`; its
dict is stored under its name, and keys of benchmarks not run this time are kept, so one
can be rerun alone. Smoke figures only say that a benchmark still runs
(tests/bench/test_bench_smoke.py): they are never merged into bench/results.json. T2G_BENCH_SMOKE=1
is the same as --smoke; T2G_BENCH_RESULTS=PATH writes the figures there instead, smoke
or not.

Every saved entry names the lock it was measured under (`lock`: the first 12 hex digits
of constraints/lock.txt's sha256, bench/lockfile.py), or `lock: null` with the packages
that differ when the environment is not the locked tree.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.lockfile import installed_against

BENCHMARKS = ["rewards", "cache", "load", "stack", "sft", "regen", "drift", "graph", "graph_resolution"]
# Experiments: an hour or more each on 2 cores, or a trained model to measure (graph_quality:
# T2G_GRAPH_MODEL; identities_student trains one), or data a clone lacks (news_resolution:
# T2G_NEWS_JSONL), or the whole test suite in a clone (suite), so `make bench` leaves them
# out; run by name.
EXPERIMENTS = ["think", "graph_quality", "identities_student", "news_resolution", "suite"]
RESULTS = Path(__file__).with_name("results.json")


def load_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_one(name: str, smoke: bool = False) -> dict[str, Any]:
    return importlib.import_module(f"bench.{name}").run(smoke=smoke)


def results_path(smoke: bool) -> Path | None:
    """Where figures go: T2G_BENCH_RESULTS if set, else bench/results.json, never for smoke."""
    if given := os.environ.get("T2G_BENCH_RESULTS"):
        return Path(given)
    return None if smoke else RESULTS


def save(path: Path, figures: dict[str, Any]) -> None:
    results = {**load_results(path), **figures}
    # Write then rename, so an interrupted run never leaves a half-written file.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def main(argv: list[str]) -> int:
    smoke = "--smoke" in argv or os.environ.get("T2G_BENCH_SMOKE") == "1"
    names = [a for a in argv if a != "--smoke"] or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS + EXPERIMENTS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {BENCHMARKS + EXPERIMENTS}", file=sys.stderr)
        return 2
    path = results_path(smoke)
    lock = installed_against()  # once: the tree does not change during the run
    for name in names:
        figures = run_one(name, smoke=smoke)
        print(json.dumps({name: figures}, indent=2))
        if path is not None:  # after each benchmark: a later one failing keeps the earlier figures
            save(path, {name: {**figures, **lock}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
