"""Teacher extraction throughput on a GPU: vLLM offline (one generate call per shard),
vLLM behind its OpenAI-compatible server (the openai backend, many requests in flight),
and a seed-style baseline (batches of 8 submitted one after another).

Driven by bench/gpu_teacher.sh (which installs vllm, builds the tiny model and starts
`vllm serve`); each mode adds its figures under `gpu_teacher` in bench/results.json.
Not in bench/__main__.BENCHMARKS: CI has no GPU.

    python -m bench.gpu_teacher build DIR
    python -m bench.gpu_teacher offline DIR [--n 500]
    python -m bench.gpu_teacher baseline DIR [--n 500]
    python -m bench.gpu_teacher server NAME --base-url URL [--n 500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.__main__ import RESULTS, load_results
from bench.lockfile import installed_against
from t2g.config import CollectConfig, ExtractConfig
from t2g.stages.collect import collect
from t2g.stages.extract import extract

MAX_NEW_TOKENS = 256
SEED_BATCH = 8


def docs(n: int) -> pa.Table:
    cfg = CollectConfig.model_validate(
        {
            "sources": [{"name": "bench", "kind": "toyworld", "split": "pool", "n": n, "seed": 11}],
            "near_duplicate_threshold": None,
        }
    )
    main = collect(cfg).main
    return main if isinstance(main, pa.Table) else pa.concat_tables(list(main))


def figures(table: pa.Table, seconds: float) -> dict[str, Any]:
    rows = table.to_pylist()
    completion = sum(r["completion_tokens"] or 0 for r in rows)
    return {
        "docs": len(rows),
        "valid_json_rate": round(sum(r["graph"] is not None for r in rows) / max(len(rows), 1), 4),
        "errors": sum(bool(r["error"]) for r in rows),
        "seconds": round(seconds, 2),
        "completion_tokens": completion,
        "tokens_per_s": round(completion / seconds, 1),
        "docs_per_s": round(len(rows) / seconds, 2),
    }


def run_extract(cfg: ExtractConfig, table: pa.Table, batch: int | None = None) -> dict[str, Any]:
    # Warm-up outside the clock: engine start and CUDA graphs are not throughput.
    extract(cfg, table.slice(0, 2))
    started = time.time()
    if batch is None:
        out = extract(cfg, table).main
    else:  # the seed: batches of 8, each waiting for the one before
        out = pa.concat_tables([extract(cfg, table.slice(i, batch)).main for i in range(0, table.num_rows, batch)])
    return figures(out, time.time() - started)


def save(mode: str, figs: dict[str, Any]) -> None:
    results = load_results(RESULTS)
    results.setdefault("gpu_teacher", {})[mode] = figs
    results["gpu_teacher"].update(installed_against())  # which tree: the CPU lock, or what differs
    try:
        import torch

        results["gpu_teacher"]["device"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)
    print(json.dumps({mode: figs}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["build", "offline", "baseline", "server"])
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--base-url")
    args = ap.parse_args()
    if args.mode == "build":
        from t2g import tiny, toyworld

        tiny.build_tiny(Path(args.model), toyworld.corpus(2000, seed=0))
        return
    table = docs(args.n)
    common = dict(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0, shard_size=args.n)
    if args.mode == "server":
        cfg = ExtractConfig(
            backend="openai", model=args.model, base_url=args.base_url, max_in_flight=256, timeout_s=120, **common
        )
        save("vllm_serve_openai", run_extract(cfg, table))
        return
    cfg = ExtractConfig(backend="vllm", model=args.model, gpu_memory_utilization=0.5, **common)
    if args.mode == "offline":
        save("vllm_offline", run_extract(cfg, table))
    else:
        save("seed_baseline_batches_of_8", run_extract(cfg, table, batch=SEED_BATCH))


if __name__ == "__main__":
    main()
