"""Entity resolution on the toy world with identities, gold mentions given (isolates resolution
from extraction): B-cubed of t2g's tiers against exact matching, side by side; merges across
types; the shared-surname pair; edges against gold facts. Then resolve's throughput and peak RSS
on 100,000 short documents' gold mentions, in a fresh child process (wall time and the
process's CPU time: on a shared machine the wall clock says more about the neighbours).

    python -m bench graph_resolution          # T2G_GRAPH_RES_DOCS=20000 for a quicker look
    python -m bench --smoke graph_resolution  # 150 documents, 2,000 for the throughput

Goal (issue 26): B-cubed F1 >= 0.95, zero merges across types, the shared-surname pair apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from typing import Any

QUALITY_DOCS, SMOKE_QUALITY_DOCS = 1000, 150
SCALE_DOCS = int(os.environ.get("T2G_GRAPH_RES_DOCS", "100000"))
SMOKE_SCALE_DOCS = 2000
GOAL_F1 = 0.95


def quality(n_docs: int) -> dict[str, Any]:
    from t2g.kg import identities
    from t2g.kg.resolve import resolve
    from t2g.kg.scoring import bcubed, edge_scores, node_to_gold

    docs = identities.documents(n_docs)
    mentions, relations = identities.gold_tables(docs)
    gold = identities.gold_ids(docs)
    cols = lambda t, names: zip(*(t.column(c).to_pylist() for c in names))  # noqa: E731
    exact = {(d, s, e): (ty, tx) for d, s, e, ty, tx in cols(mentions, ("doc_id", "start", "end", "type", "text"))}
    out: dict[str, Any] = {
        "documents": n_docs,
        "gold_mentions": len(gold),
        "gold_entities": len(set(gold.values())),
        "long_documents": sum(len(d["text"]) > 2000 for d in docs),
        "bcubed": {"exact match": _round(bcubed(exact, gold))},
    }
    tiers = {
        "normalised exact (a)": {"aliases": False, "fuzzy": False},
        "+ alias rules (a+b)": {"fuzzy": False},
        "t2g: + fuzzy (a+b+c)": {},
    }
    for name, options in tiers.items():
        started = time.perf_counter()
        graph = resolve(mentions, relations, **options)
        pred = {(d, s, e): n for d, s, e, n in cols(graph.mentions, ("doc_id", "start", "end", "node_id"))}
        out["bcubed"][name] = {
            **_round(bcubed(pred, gold)),
            "nodes": graph.nodes.num_rows,
            "s": round(time.perf_counter() - started, 3),
        }
    # the full resolution's graph (the last one): types, the shared surname, merges, edges
    types = defaultdict(set)
    members = defaultdict(set)
    for key, node in pred.items():
        types[node].add(gold[key].split(":")[0])
        members[node].add(gold[key])
    people = [e for e in identities.cast() if e.type == "person"]
    pair = [p.gold_id for p in people if p.last == people[0].last]
    node_gold = node_to_gold(pred.items(), gold)
    edges = list(cols(graph.edges, ("head", "type", "tail")))
    out.update(
        {
            "f1": out["bcubed"]["t2g: + fuzzy (a+b+c)"]["f1"],
            "exact_f1": out["bcubed"]["exact match"]["f1"],
            "cross_type_nodes": sum(len(t) > 1 for t in types.values()),
            "shared_surname_pair": pair,
            "shared_surname_pair_apart": len(pair) == 2 and not any(set(pair) <= m for m in members.values()),
            "merges_by_rule": dict(Counter(graph.merges.column("rule").to_pylist())),
            "edges_vs_gold_facts": _round(edge_scores(edges, node_gold, identities.gold_facts(docs))),
        }
    )
    out["meets_goal"] = out["f1"] >= GOAL_F1 and out["cross_type_nodes"] == 0 and out["shared_surname_pair_apart"]
    return out


_CHILD = r"""
import json, resource, sys, time
from t2g.kg import identities
from t2g.kg.resolve import resolve
n = int(sys.argv[1])
world = identities.World(people=90, locations=60, products=60, long_every=0, max_facts=2)
t = time.perf_counter()
docs = identities.documents(n, seed=7, world=world)
mentions, relations = identities.gold_tables(docs)
del docs
gen_s = time.perf_counter() - t
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t, c = time.perf_counter(), time.process_time()
graph = resolve(mentions, relations)
s, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"documents": n, "mentions": mentions.num_rows, "relations": relations.num_rows,
                  "nodes": graph.nodes.num_rows, "edges": graph.edges.num_rows, "resolve_s": round(s, 2),
                  "mentions_per_s": round(mentions.num_rows / s), "documents_per_s": round(n / s),
                  "resolve_cpu_s": round(cpu, 2), "mentions_per_cpu_s": round(mentions.num_rows / cpu),
                  "documents_per_cpu_s": round(n / cpu),
                  "generate_s": round(gen_s, 2), "rss_before_resolve_mb": round(rss_before, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def scale(n_docs: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(n_docs)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _round(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def run(smoke: bool = False) -> dict[str, Any]:
    return {
        **quality(SMOKE_QUALITY_DOCS if smoke else QUALITY_DOCS),
        "scale": scale(SMOKE_SCALE_DOCS if smoke else SCALE_DOCS),
    }


if __name__ == "__main__":
    print(json.dumps(run("--smoke" in sys.argv), indent=2))
