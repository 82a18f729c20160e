"""The seed's experiment on a laptop: thinking against non-thinking students.

configs/tiny.yaml (the student answers with the JSON) and configs/tiny-think.yaml (a tiny
reasoner writes `<think>…</think>` for every kept example, the student learns it, GRPO adds
the format reward) on one store: collect, the teacher, extract and filter are the same
artifacts for both, so the students see the same documents and labels, and train the same
optimizer steps. Per student seed S (sft.seed = grpo.seed = S): entity and relation F1
after SFT and after GRPO, valid JSON, type conformity, the thinking student's format rate
and think length, and thinking minus non-thinking with a 95% paired bootstrap interval
over the test documents (t2g.metrics.paired_bootstrap).

    python -m bench think            # seeds 0 1 2: ~1 hour on 2 idle cores
    python -m bench --smoke think    # a check that it still runs (small sizes, until reason)

The store (T2G_BENCH_THINK_STORE, default .t2g/bench-think/store) is kept: a rerun after
an interruption reruns only what is missing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.pipeline import run_recipe
from t2g.metrics import paired_bootstrap

REPO = Path(__file__).resolve().parents[1]
MODES = {"plain": REPO / "configs" / "tiny.yaml", "think": REPO / "configs" / "tiny-think.yaml"}
SEEDS = (0, 1, 2)
# Smoke: small documents and models, a few steps; an untrained reasoner's answers are all
# rejected, so the smoke stops at the reason stage (its drop table is the figure).
SMOKE = ["collect.sources.0.n=40", "collect.sources.1.n=60", "collect.sources.2.n=20", "extract.backend=gold", "extract.model=null",
         "teacher.tiny.pretrain_steps=0", "teacher.max_steps=2", "reasoner.max_steps=2", "reason.max_new_tokens=16"]  # fmt: skip


def _predictions(store: Any, ref: Any, split: str, model: str) -> dict[str, dict]:
    rows = store.read("evaluate", ref.key).to_pylist()
    return {r["id"]: r for r in rows if r["dataset"] == split and r["model"] == model}


def _paired(store: Any, plain: Any, think: Any, split: str, model: str) -> dict[str, Any]:
    """Thinking minus non-thinking `model` on the same test documents."""
    a, b = _predictions(store, plain, split, model), _predictions(store, think, split, model)
    ids = sorted(set(a) & set(b))
    golds = [json.loads(a[i]["gold"]) for i in ids]
    return paired_bootstrap(
        golds, [json.loads(a[i]["prediction"]) for i in ids], [json.loads(b[i]["prediction"]) for i in ids]
    )


def _reason_figures(store: Any, ref: Any) -> dict[str, Any]:
    summary = store.manifest("reason", ref.key).get("summary") or {}
    return {k: summary.get(k) for k in ("rows_in", "rows_out", "reasons", "completion_tokens", "generate_s")}


def run(smoke: bool = False) -> dict[str, Any]:
    store_dir = (
        Path(tempfile.mkdtemp())
        if smoke
        else Path(os.environ.get("T2G_BENCH_THINK_STORE", ".t2g/bench-think/store")).resolve()
    )
    uri = f"file://{store_dir}"
    if smoke:
        figs, refs, store = run_recipe(str(MODES["think"]), uri, SMOKE, until="reason")
        return {"smoke": True, "stages": figs["stages"], "reason": _reason_figures(store, refs["reason"])}
    out: dict[str, Any] = {"seeds": {}, "store": str(store_dir)}
    for seed in SEEDS:
        overrides = [f"sft.seed={seed}", f"grpo.seed={seed}"]
        per: dict[str, Any] = {}
        refs: dict[str, Any] = {}
        for mode, config in MODES.items():
            figs, refs[mode], store = run_recipe(str(config), uri, overrides)
            per[mode] = {"f1": figs["f1"], "comparisons": figs["comparisons"], "stages": figs["stages"]}
        per["think"]["reason"] = _reason_figures(store, refs["think"]["reason"])
        per["think - plain"] = {
            m: _paired(store, refs["plain"]["evaluate"], refs["think"]["evaluate"], "test", m) for m in ("sft", "grpo")
        }
        out["seeds"][str(seed)] = per
        print(json.dumps({seed: per["think - plain"]}, indent=1), flush=True)
    out["mean"] = {
        mode: {
            model: {
                k: round(sum(out["seeds"][str(s)][mode]["f1"][model][k] for s in SEEDS) / len(SEEDS), 4)
                for k in ("entities", "relations")
            }
            for model in ("sft", "grpo")
        }  # fmt: skip
        for mode in MODES
    }
    return out
