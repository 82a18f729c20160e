"""Run benchmarks and merge their figures into bench/results.json.

    python -m bench            # every benchmark in BENCHMARKS
    python -m bench rewards    # just these

Each benchmark is a module `bench.<name>` with `run() -> dict`; its dict is stored under
its name, and keys of benchmarks not run this time are kept, so one can be rerun alone.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = ["rewards", "cache", "load", "stack", "sft"]
RESULTS = Path(__file__).with_name("results.json")


def load_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {BENCHMARKS}", file=sys.stderr)
        return 2
    results = load_results(RESULTS)
    for name in names:
        figures = importlib.import_module(f"bench.{name}").run()
        results[name] = figures
        print(json.dumps({name: figures}, indent=2))
    # Write then rename, so an interrupted run never leaves a half-written file.
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
