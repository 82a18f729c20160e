"""The corpus graph at scale: N short documents through corpus → chunk → graph-extract →
resolve → export, extraction served by the test suite's fake OpenAI-compatible server
answering grounded graphs (tests/support/fake_openai.py, tests/support/fake_graph.py), the stages walked
in this process as a flow walks them (t2g.kg.local: same keys, shards and LLM cache).

Figures: seconds per stage, peak RSS of the process (server included), resolve + export
documents per second (goal: >= 5,000 on 2 cores, peak RSS < 2 GB); then the incremental
update: +10% documents, the requests the server answered (goal: exactly the new chunks),
the old nodes whose id is unchanged, and whether every export file equals a build from
scratch (a fresh store; the LLM cache shared, so the answers are the same answers).

    python -m bench graph           # 100,000 documents
    python -m bench --smoke graph   # 500
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from t2g.kg.config import validate
from t2g.kg.local import run_graph
from t2g.store import Store
from tests.support.fake_graph import ENTITY_TYPES, RELATION_TYPES, document, grounded_answer
from tests.support.fake_openai import Discard, FakeOpenAI

FULL, SMOKE = 100_000, 500
GOAL_DOCS_PER_S, GOAL_RSS_MB = 5_000, 2_048


def _write(path: Path, start: int, n: int) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for i in range(start, start + n):
            fh.write(json.dumps(document(i)) + "\n")


def _recipe(root: Path, name: str, docs: Path, base_url: str, cache: str, shard: int):
    return validate({
        "name": f"graph-scale-{name}",
        "store": (root / f"store-{name}").as_uri(),
        "llm_cache": cache,
        "collect": {"sources": [{"name": "docs", "kind": "jsonl", "path": str(docs)}], "near_duplicate_threshold": None},
        "chunk": {"max_tokens": 64, "overlap_tokens": 8},
        "graph": {"backend": "openai", "model": "fake", "base_url": base_url, "entity_types": ENTITY_TYPES,
                  "relation_types": RELATION_TYPES, "shard_size": shard, "max_in_flight": 32, "max_retries": 2},
        "resolve": {},
        "export": {"formats": ["graphml", "neo4j", "html"]},
    })  # fmt: skip


def _nodes(recipe, outcomes) -> dict[str, str]:
    ref = outcomes["resolve"].ref
    t = Store(recipe.store).read("resolve", ref.key)
    return dict(zip(t.column("node_id").to_pylist(), t.column("name").to_pylist()))


def _files(recipe, outcomes) -> dict[str, bytes]:
    store, ref = Store(recipe.store), outcomes["export"].ref
    return {n: store.read_file("export", ref.key, n) for n in store.manifest("export", ref.key)["files"]}


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(smoke: bool = False, n: int | None = None) -> dict[str, Any]:
    n = n or (SMOKE if smoke else FULL)
    added = max(1, n // 10)
    with (
        tempfile.TemporaryDirectory(prefix="t2g-graph-scale-") as tmp,
        FakeOpenAI(answer=grounded_answer(ungrounded_every=50)) as fake,
    ):
        fake.bodies = Discard()
        root = Path(tmp)
        cache = (root / "llm-cache").as_uri()
        shard = max(64, n // 24)
        docs = root / "docs.jsonl"
        _write(docs, 0, n)
        started = time.time()
        recipe = _recipe(root, "first", docs, fake.base_url, cache, shard)
        first = run_graph(recipe)
        first_s = time.time() - started
        asked = fake.answered

        grown_docs = root / "grown.jsonl"
        grown_docs.write_bytes(docs.read_bytes())
        _write(grown_docs, n, added)
        started = time.time()
        grown_recipe = _recipe(root, "grown", grown_docs, fake.base_url, cache, shard)
        grown = run_graph(grown_recipe)
        update_s = time.time() - started
        requests = fake.answered - asked
        new_chunks = grown["chunk"].summary["chunks"] - first["chunk"].summary["chunks"]

        scratch_recipe = _recipe(root, "scratch", grown_docs, fake.base_url, cache, shard)
        scratch = run_graph(scratch_recipe)
        old, now = _nodes(recipe, first), _nodes(grown_recipe, grown)
        kept = sum(1 for node_id, name in old.items() if now.get(node_id) == name)
        stage_s = {name: round(out.seconds, 2) for name, out in first.items()}
        graph_s = stage_s["resolve"] + stage_s["export"]
        extract = first["graph-extract"].summary
        return {
            "documents": n,
            "chunks": first["chunk"].summary["chunks"],
            "mentions": extract["mentions"],
            "dropped": extract["dropped"],
            "nodes": first["resolve"].summary["nodes"],
            "edges": first["resolve"].summary["edges"],
            "stage_s": stage_s,
            "first_build_s": round(first_s, 1),
            "resolve_export_docs_per_s": round(n / graph_s, 1) if graph_s else None,
            "goal_docs_per_s": GOAL_DOCS_PER_S,
            "peak_rss_mb": _peak_mb(),
            "goal_rss_mb": GOAL_RSS_MB,
            "under_rss_limit": _peak_mb() < GOAL_RSS_MB,
            "incremental": {
                "added_documents": added,
                "new_chunks": new_chunks,
                "requests": requests,
                "only_new_chunks_requested": requests == new_chunks,
                "old_nodes": len(old),
                "old_node_ids_unchanged": kept,
                "exports_equal_scratch": _files(grown_recipe, grown) == _files(scratch_recipe, scratch),
                "update_s": round(update_s, 1),
            },
        }
