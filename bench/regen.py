"""Regeneration: what a rerun over a grown corpus costs with the LLM response cache.

The teacher is tests/support/fake_openai.py with a per-request latency, a token rate and a
capacity (answers in progress at once: a GPU server's batch), scaled down, served from a
child process as a real teacher is served from elsewhere. A full relabel
of N documents (extract, backend openai, sharded as the flow runs it: every shard at once,
as Prefect's default thread pool maps them, each with max_in_flight requests, an empty
cache) against a regeneration after
10% more documents were inserted at random positions (same cache, shard boundaries
shifted): teacher requests and wall time of each. Goal: the regeneration costs at most
GOAL of the full relabel, in requests and in wall time. `floor_s`: the regeneration's new
requests alone, sent straight to the teacher from as many clients as the regeneration had
shards (no shards, no cache): what the server and the HTTP take, the part of the
regeneration that no shard work can remove.

    python -m bench regen            # N = 2,000
    python -m bench --smoke regen    # N = 40
"""

from __future__ import annotations

import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench import machine
from t2g import shards
from t2g.config import CollectConfig, ExtractConfig
from t2g.llm import clear_cache
from t2g.llm.cache import ResponseCache, use_cache
from t2g.llm.openai_backend import OpenAIBackend  # imported before the clock starts: the first run must not pay for it
from t2g.stages.collect import collect
from t2g.stages.extract import build_requests
from t2g.store import Store
from tests.support.fake_openai import FakeOpenAIProcess

GOAL = 0.12
N, SMOKE_N = 2000, 40
GROWTH = 0.10
LATENCY_S = 0.2  # per request, before the first token
TOKENS_PER_S = 200.0  # per request, once it streams
IN_FLIGHT = 32  # per shard (the recipe's max_in_flight)
CAPACITY = 64  # answers the server works on at once
ANSWER_TOKENS = 60  # a small graph's worth of JSON


def _answer(key: str, body: dict) -> tuple[str, None]:
    padding = " ".join(["x"] * (ANSWER_TOKENS - 4))  # the fake counts words as tokens
    return f'{{"entities": [], "relations": [], "note": "{padding}"}}', None


def _docs(n: int, seed: int) -> list[dict[str, Any]]:
    cfg = CollectConfig.model_validate(
        {
            "sources": [{"name": f"s{seed}", "kind": "toyworld", "split": "pool", "n": n, "seed": seed}],
            "near_duplicate_threshold": None,
        }
    )
    main = collect(cfg).main
    return (main if isinstance(main, pa.Table) else pa.concat_tables(list(main))).to_pylist()


def _label(
    rows: list[dict[str, Any]], store: Store, cfg: ExtractConfig, cache: ResponseCache, name: str
) -> tuple[float, dict]:
    ref = store.write("collect", name, pa.Table.from_pylist(rows))
    started = time.perf_counter()
    plan = shards.plan("extract", cfg, [ref], store, cfg.shard_size)

    def one(shard: shards.Shard) -> None:
        with use_cache(cache):
            shards.run_shard("extract", cfg, shard, [ref], store)

    with ThreadPoolExecutor(max(1, len(plan.shards))) as pool:
        list(pool.map(one, plan.shards))
    outcome = shards.merge("extract", cfg, [ref], plan.shards, store)
    clear_cache()
    return time.perf_counter() - started, {**outcome.summary["llm"], "shards": len(plan.shards)}


def _floor(rows: list[dict[str, Any]], cfg: ExtractConfig, clients: int) -> float:
    """Seconds to ask `rows`' requests (their text tagged, so none was asked before)
    from `clients` backends at once, each with the recipe's max_in_flight."""
    requests, _ = build_requests(cfg, [{**row, "text": f"[floor] {row['text']}"} for row in rows])
    parts = [requests[k::clients] for k in range(clients)]
    backends = [OpenAIBackend(cfg.model, cfg.base_url, "unused", max_in_flight=cfg.max_in_flight) for _ in parts]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda pair: pair[0].generate(pair[1]), zip(backends, parts)))
    return time.perf_counter() - started


def run(smoke: bool = False) -> dict[str, Any]:
    n = SMOKE_N if smoke else N
    old = _docs(n, seed=31)
    seen = {r["text"] for r in old}
    extra = [r for r in _docs(round(n * GROWTH) + 5, seed=32) if r["text"] not in seen][: round(len(old) * GROWTH)]
    grown = list(old)
    rng = random.Random(7)
    for row in extra:
        grown.insert(rng.randrange(len(grown) + 1), row)
    # In its own process, as a teacher server is: in this interpreter its threads competed
    # with the client's shards for the one lock and their CPU counted as the client's.
    teacher = FakeOpenAIProcess(answer=_answer, latency_s=LATENCY_S, tokens_per_s=TOKENS_PER_S, capacity=CAPACITY)
    with tempfile.TemporaryDirectory() as tmp, teacher as fake:
        store, cache = Store(f"file://{tmp}/store"), ResponseCache(Store(f"file://{Path(tmp)}/cache"))
        cfg = ExtractConfig(
            backend="openai", model="fake-teacher", base_url=fake.base_url, max_in_flight=IN_FLIGHT, shard_size=256
        )
        full_s, full = _label(old, store, cfg, cache, "full")
        full_requests = fake.answered
        regen_s, regen = _label(grown, store, cfg, cache, "grown")
        regen_requests = fake.answered - full_requests
        floor_s = _floor(extra, cfg, regen["shards"])
    host = machine.describe(1.0)  # the ratio's CPU-bound part (lookups, HTTP) scales with it
    ratio_requests = regen_requests / max(full_requests, 1)
    ratio_wall = regen_s / max(full_s, 1e-9)
    return {
        "documents": len(old),
        "new_documents": len(extra),
        "teacher": {
            "latency_s": LATENCY_S,
            "tokens_per_s": TOKENS_PER_S,
            "capacity": CAPACITY,
            "answer_tokens": ANSWER_TOKENS,
        },
        "max_in_flight": IN_FLIGHT,
        "full": {
            "requests": full_requests,
            "wall_s": round(full_s, 2),
            "completion_tokens": full["completion_tokens_generated"],
        },
        "regen": {
            "requests": regen_requests,
            "wall_s": round(regen_s, 2),
            "cache_hits": regen["cache_hits"],
            "completion_tokens_saved": regen["completion_tokens_saved"],
            "shards": regen["shards"],
        },
        "floor_s": round(floor_s, 2),
        "ratio_floor": round(floor_s / max(full_s, 1e-9), 3),
        "ratio_requests": round(ratio_requests, 3),
        "ratio_wall": round(ratio_wall, 3),
        "goal": GOAL,
        "meets_goal": ratio_requests <= GOAL and ratio_wall <= GOAL,
        "machine": host,
    }
