"""A small resolved graph for the export tests: three types, two relation types between the same
pair, a null confidence, hostile names (markup, quotes, commas, newlines), mentions and evidence."""

from __future__ import annotations

import pyarrow as pa

from t2g.kg.tables import EDGES, EVIDENCE, GRAPH_MENTIONS, MERGES, NODES, edge_id, mention_id, node_id

HOSTILE = "</script><script>alert(1)</script>"


def _node(type_: str, name: str, aliases: list[str], mentions: int, docs: int) -> dict:
    return {
        "node_id": node_id(type_, name.lower()),
        "name": name,
        "type": type_,
        "aliases": aliases,
        "mention_count": mentions,
        "doc_count": docs,
    }


def sample_graph() -> dict[str, pa.Table]:
    nodes = [
        _node("person", "Angela Merkel", ["Merkel", "Chancellor Merkel"], 5, 3),
        _node("organization", "Christian Democratic Union", ["CDU", 'the "Union"', "CDU, Germany"], 3, 2),
        _node("location", "Berlin", [], 2, 2),
        _node("person", HOSTILE, ["a & b <c>", "line\nbreak"], 1, 1),
        _node("work of art", "Faust; Part One | Two", [], 1, 1),
    ]
    ids = [n["node_id"] for n in nodes]
    merkel, cdu, berlin, hostile, faust = ids

    def _edge(head: str, type_: str, tail: str, count: int, confidence: float | None) -> dict:
        return {
            "edge_id": edge_id(head, type_, tail),
            "head": head,
            "tail": tail,
            "type": type_,
            "count": count,
            "confidence": confidence,
        }

    edges = [
        _edge(merkel, "member_of", cdu, 3, 0.9),
        _edge(merkel, "leader of", cdu, 1, None),  # second type between the same pair
        _edge(merkel, "lives_in", berlin, 2, 0.75),
        _edge(cdu, "based_in", berlin, 1, 0.5),
        _edge(hostile, "wrote", faust, 1, None),
    ]
    mentions = []
    for i, (nid, text) in enumerate(
        [
            (merkel, "Angela Merkel"),
            (merkel, "Merkel"),
            (cdu, "CDU"),
            (berlin, "Berlin"),
            (hostile, HOSTILE),
            (faust, "Faust"),
        ]
    ):
        doc = f"doc{i % 3}"
        mentions.append(
            {
                "mention_id": mention_id(doc, 10 * i, 10 * i + len(text), "t"),
                "node_id": nid,
                "doc_id": doc,
                "chunk_id": f"{doc}#0",
                "start": 10 * i,
                "end": 10 * i + len(text),
                "text": text,
                "type": next(n["type"] for n in nodes if n["node_id"] == nid),
            }
        )
    evidence = [
        {
            "edge_id": edges[0]["edge_id"],
            "doc_id": "doc0",
            "start": 0,
            "end": 40,
            "text": "Angela Merkel is a member of the CDU.",
        },
        {"edge_id": edges[2]["edge_id"], "doc_id": "doc1", "start": 5, "end": 30, "text": "Merkel lives in Berlin."},
        {"edge_id": edges[4]["edge_id"], "doc_id": "doc2", "start": 0, "end": 60, "text": f"{HOSTILE} wrote Faust."},
    ]
    merges = [
        {
            "node_id": merkel,
            "mention_id": mentions[1]["mention_id"],
            "joined_to": mentions[0]["mention_id"],
            "rule": "surname_after_full_name",
            "score": None,
        },
        {
            "node_id": cdu,
            "mention_id": mentions[2]["mention_id"],
            "joined_to": mentions[2]["mention_id"],
            "rule": "acronym",
            "score": 0.8,
        },
    ]
    return {
        "nodes": pa.Table.from_pylist(nodes, schema=NODES),
        "edges": pa.Table.from_pylist(edges, schema=EDGES),
        "mentions": pa.Table.from_pylist(mentions, schema=GRAPH_MENTIONS),
        "evidence": pa.Table.from_pylist(evidence, schema=EVIDENCE),
        "merges": pa.Table.from_pylist(merges, schema=MERGES),
    }


def demo_graph(people: int = 24, seed: int = 0) -> dict[str, pa.Table]:
    """A larger deterministic graph (people, organisations, cities) with evidence: the viewer's picture."""
    import random

    rng = random.Random(seed)
    first = ["Ada", "Boris", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Keiko", "Luca"]
    last = ["Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Sato", "Tanaka", "Urban", "Varga", "Weber"]
    orgs = ["Northwind Bank", "Helix Labs", "Atlas Motors", "Blue River Press", "Orion Energy", "Kestrel Air"]
    cities = ["Paris", "Lagos", "Osaka", "Berlin", "Lima"]
    nodes = [_node("organization", o, [o.split()[0]], 4, 3) for o in orgs]
    nodes += [_node("location", c, [], 3, 2) for c in cities]
    names = sorted({f"{rng.choice(first)} {rng.choice(last)}" for _ in range(people * 2)})[:people]
    nodes += [_node("person", n, [n.split()[1]], rng.randint(1, 6), rng.randint(1, 4)) for n in names]
    by_name = {n["name"]: n["node_id"] for n in nodes}
    edges, evidence = {}, []

    def link(h: str, t: str, type_: str, sentence: str) -> None:
        e = {
            "edge_id": edge_id(by_name[h], type_, by_name[t]),
            "head": by_name[h],
            "tail": by_name[t],
            "type": type_,
            "count": rng.randint(1, 4),
            "confidence": round(rng.uniform(0.5, 1), 2),
        }
        if e["edge_id"] not in edges:
            edges[e["edge_id"]] = e
            evidence.append(
                {
                    "edge_id": e["edge_id"],
                    "doc_id": f"doc{len(evidence)}",
                    "start": 0,
                    "end": len(sentence),
                    "text": sentence,
                }
            )

    for o in orgs:
        c = rng.choice(cities)
        link(o, c, "based_in", f"{o} is headquartered in {c}.")
    for n in names:
        o = rng.choice(orgs)
        link(n, o, "works_for", f"{n} joined {o} last year.")
        if rng.random() < 0.5:
            link(n, rng.choice(cities), "lives_in", f"{n} lives in {rng.choice(cities)}.")
        if rng.random() < 0.3:
            link(n, o, "founded", f"{n} co-founded {o}.")
    mentions = [
        {
            "mention_id": mention_id(f"doc{i}", 0, len(n["name"]), n["type"]),
            "node_id": n["node_id"],
            "doc_id": f"doc{i}",
            "chunk_id": f"doc{i}#0",
            "start": 0,
            "end": len(n["name"]),
            "text": n["name"],
            "type": n["type"],
        }
        for i, n in enumerate(nodes)
    ]
    return {
        "nodes": pa.Table.from_pylist(nodes, schema=NODES),
        "edges": pa.Table.from_pylist(list(edges.values()), schema=EDGES),
        "mentions": pa.Table.from_pylist(mentions, schema=GRAPH_MENTIONS),
        "evidence": pa.Table.from_pylist(evidence, schema=EVIDENCE),
        "merges": pa.Table.from_pylist([], schema=MERGES),
    }
