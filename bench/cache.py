"""Cached rerun: the default recipe (configs/tiny.yaml, what `make demo` runs) run twice,
whole pipeline, with Prefect's ephemeral API and a fresh file:// store, as `make demo`
runs it. The second run must do no stage work: every stage a cache hit, in under
GOAL_S seconds. The first run trains the teacher, student and GRPO: ~17 minutes on 2 idle cores.

    python -m bench cache                       # the whole default recipe
    BENCH_CACHE_UNTIL=filter python -m bench cache   # stop after a stage
    python -m bench --smoke cache               # bench.recipes' small gold recipe, --until filter
    BENCH_CACHE_DIR=DIR python -m bench cache   # keep the run's folder (its store: DIR/.t2g/store)

The first run is `make demo` from an empty store: its wall time and, when it reached
evaluate, its F1 table and GRPO - SFT interval (the README's demo table) are recorded too,
with the machine it ran on (bench/machine.py: its matrix-multiply rate sets the wall time).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import machine, recipes

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO / "configs" / "tiny.yaml"
UNTIL = os.environ.get("BENCH_CACHE_UNTIL") or None
GOAL_S = 10
# Smoke: a few gold-labelled documents, the data stages in seconds, no model.
SMOKE = recipes.gold("bench-cache-smoke", seed=20, pool=40)
# `t2g run`'s closing line: "recipe tiny: 8 stages in 3.2 s (8 cache hits)".
_SUMMARY = re.compile(r"^recipe \S+: (\d+) stages in [\d.]+ s \((\d+) cache hits[^)]*\)$", re.M)


# Prefect's console lines: "01:48:15.228 | INFO    | Task run 'teacher [tiny]' - Finished in state Completed()".
_LINE = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d+) \| \w+ +\| (?:Task run '(\S+)[^']*' - Finished in state|Flow run '[^']*' - Beginning flow run)",
    re.M,
)


def stage_walls(log: str) -> dict[str, float]:
    """Seconds from the end of the stage before (or the flow's start) to the end of each
    stage's last task run (an extract shard, say), from the run's console log."""
    walls: dict[str, float] = {}
    last = None
    for h, m, sec, stage in _LINE.findall(log):
        t = int(h) * 3600 + int(m) * 60 + float(sec)
        if last is not None and t < last:
            t += 24 * 3600  # past midnight
        if stage and last is not None:
            walls[stage] = round(walls.get(stage, 0.0) + t - last, 1)
        last = t
    return walls


def run_recipe(config: Path, until: str | None, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t2g = str(Path(sys.executable).with_name("t2g"))
    args = [t2g, "run", "--config", str(config)] + (["--until", until] if until else [])
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    return time.perf_counter() - started, proc.stdout + proc.stderr


def evaluation(folder: Path) -> dict[str, Any]:
    """The demo's F1 table from the evaluate artifact its first run wrote ({} without one)."""
    from bench.pipeline import model_figures
    from t2g.store import Store

    store = Store(f"file://{folder}/.t2g/store")
    keys = [key for _, key in store.artifacts("evaluate")]
    if len(keys) != 1:
        return {}
    report = json.loads(store.read_file("evaluate", keys[0], "report.json"))
    return {
        "f1": {name: model_figures(r) for name, r in report["models"].items()},
        "comparisons": report.get("comparisons"),
    }


def run(smoke: bool = False) -> dict[str, Any]:
    keep = os.environ.get("BENCH_CACHE_DIR")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        config, until = (recipes.write(SMOKE, tmp), "filter") if smoke else (DEFAULT_RECIPE, UNTIL)
        env = {**os.environ, "PREFECT_HOME": f"{tmp}/prefect", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)  # Prefect's ephemeral API, as `make demo`
        host = machine.describe(0.5 if smoke else 2.0)  # before the run, on idle cores
        first_s, first_out = run_recipe(config, until, tmp, env)
        figures = evaluation(tmp)
        second_s, out = run_recipe(config, until, tmp, env)
    found = _SUMMARY.search(out)
    if found is None:
        raise RuntimeError(f"no closing summary line in the rerun's output:\n{out[-2000:]}")
    stages, hits = int(found[1]), int(found[2])
    return {
        "recipe": "bench-cache-smoke" if smoke else str(config.relative_to(REPO)),
        "until": until or "evaluate",
        "first_s": round(first_s, 1),
        "cached_rerun_s": round(second_s, 1),
        "first_stages_s": stage_walls(first_out),
        "machine": host,
        "stages": stages,
        "cache_hits": hits,
        "goal_s": GOAL_S,
        "meets_goal": hits == stages and second_s <= GOAL_S,
        **figures,
    }
