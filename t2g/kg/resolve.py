"""Entity resolution: grounded mentions -> one node per entity, every merge explained.

Tiers, each recorded in MERGES with its rule:
(a) `exact` / `normalised`: the same name up to case, punctuation, whitespace and diacritics
    (`t2g.kg.names.norm`), within one entity type.
(b) alias rules (`t2g.kg.names`): titles and suffixes stripped (`alias: title or suffix`:
    "Chancellor Angela Merkel" = "Angela Merkel", "Acme Inc." = "Acme"); short forms matched to
    a full name: a person's surname or first name, a person's initials ("J. Smith"), an acronym
    for other types ("IBM"). A short form links to the one full name of its type in the SAME
    document that it abbreviates (`<kind> in document`). If the document has none, it links to
    the one full name in the whole corpus that it abbreviates (`<kind> in corpus`, e.g.
    "Merkel" when "Angela Merkel" is the only Merkel). When two or more full names fit (John and
    Mary Smith both in the document, or, with neither in the document, both in the corpus),
    the short form is not guessed: it becomes a node of its own for that document (all its
    mentions in the document together, key "<name>@<doc_id>").
(c) `fuzzy`: spelling variants of full names, by blocking keys (`t2g.kg.blocking`).
(d) `judge`: an optional callable for the uncertain fuzzy pairs, judge(pairs) -> list[bool].

Never across types: every key, block and index is per entity type. "Jordan" the person and
"Jordan" the country are two nodes.

Node ids: node_id(type, canonical key); the canonical key is the cluster's longest full-name
key (ties: alphabetical), independent of counts and document order, so the same corpus gives
the same ids and adding documents changes a node's id only when its cluster gains a longer
name or merges with another node. The displayed name is the cluster's most frequent surface
form of that key.

Memory: the mentions (columnar), one entry per distinct name (union-find, indexes) and the
accepted pairs. Fuzzy pairs come from blocks, which the stage may compute sharded and pass in
as `pairs`; no step builds all pairs of mentions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from t2g.kg.blocking import Judge, fuzzy_pairs
from t2g.kg.names import core, norm, rule_between, short_keys, short_kind
from t2g.kg.tables import (EDGES, EVIDENCE, GRAPH_MENTIONS, MERGES, NODES, edge_id, from_columns, from_rows,
                           mention_id,
                           node_id)


@dataclass
class Graph:
    nodes: pa.Table
    edges: pa.Table
    mentions: pa.Table
    merges: pa.Table
    evidence: pa.Table
    stats: dict = field(default_factory=dict)  # merges by rule, relations dropped by reason


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra  # the smaller root wins: deterministic whatever the order
        return True


def resolve(
    mentions: pa.Table,
    relations: pa.Table,
    *,
    fuzzy_threshold: float = 0.9,
    judge_threshold: float = 0.75,
    judge: Judge | None = None,
    aliases: bool = True,
    fuzzy: bool = True,
    pairs: pa.Table | None = None,
    chunks: pa.Table | None = None,
) -> Graph:
    """Resolve MENTIONS into a Graph (see the module docstring). `aliases=False, fuzzy=False` is
    tier (a) alone. `pairs`: fuzzy pairs computed elsewhere (sharded blocks); `chunks`: CHUNKS,
    to fill the evidence text."""
    rows = _unique_mentions(mentions)
    keyf = core if aliases else (lambda t, ty: norm(t))
    # Everything about a name depends on its (surface, type) only: computed once per distinct one.
    forms: dict[tuple[str, str], tuple[str, str, str | None]] = {}
    for r in rows:
        f = (r["text"], r["type"])
        if f not in forms:
            key = keyf(*f)
            forms[f] = (key, norm(f[0]), short_kind(key, f[1], f[0]) if aliases else None)
        r["key"] = forms[f][0]

    # Which keys are full names: everything but the short forms that abbreviate some full name.
    index: dict[tuple[str, str, str], set[str]] = defaultdict(set)  # (type, kind, short) -> full keys
    if aliases:
        # A full name answers to the short forms of its key and of its whole normalised text
        # ("ZDG" for "Zentek Dynamics Group", whose key drops the suffix "Group").
        candidates = {(etype, key, whole) for (_, etype), (key, whole, kind) in forms.items() if kind is None}
        for etype, key, whole in candidates:
            for kind, short in short_keys(key, etype) + (short_keys(whole, etype) if etype != "person" else []):
                index[(etype, kind, short)].add(key)
    short_of = {f: _short(f[1], key, kind, index) for f, (key, _, kind) in forms.items()}
    full_keys = set()
    for r in rows:
        r["short"] = short_of[(r["text"], r["type"])]
        if r["short"] is None:
            full_keys.add((r["type"], r["key"]))

    uf = _UnionFind()
    merges_between: dict[tuple, tuple[str, float | None]] = {}
    if aliases and fuzzy:
        table = pairs if pairs is not None else fuzzy_pairs(
            mentions, fuzzy_threshold=fuzzy_threshold, judge_threshold=judge_threshold, judge=judge)
        for etype, a, b, rule, score in zip(*(table.column(c).to_pylist() for c in ("type", "a", "b", "rule", "score"))):
            if (etype, a) in full_keys and (etype, b) in full_keys and uf.union((etype, a), (etype, b)):
                merges_between[(etype, a, b)] = (rule, score)

    # Clusters of full keys -> canonical key -> node id.
    members: dict = defaultdict(list)
    for fk in full_keys:
        members[uf.find(fk)].append(fk)
    node_of_key: dict[tuple[str, str], str] = {}
    for root, group in members.items():
        canonical = min(group, key=lambda g: (-len(g[1]), g[1]))[1]
        nid = node_id(root[0], canonical)
        for fk in group:
            node_of_key[fk] = nid

    merges: list[dict] = []
    first_of_key: dict[tuple[str, str], dict] = {}
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_doc[r["doc_id"]].append(r)
        if r["short"] is None:
            fk = (r["type"], r["key"])
            r["node_id"] = node_of_key[fk]
            rep = first_of_key.setdefault(fk, r)
            if rep is not r:
                merges.append(_merge(r, rep, rule_between(rep["text"], r["text"]), None))
    first_of_node: dict[str, dict] = {}
    for fk in sorted(first_of_key):
        first_of_node.setdefault(node_of_key[fk], first_of_key[fk])
    merges += _tree_merges(merges_between, first_of_key, node_of_key)

    # Short forms, document by document.
    for doc_id, doc_rows in by_doc.items():
        _resolve_short_forms(doc_id, doc_rows, index, node_of_key, first_of_node, merges)

    graph_mentions = from_columns({c: [r[c] for r in rows] for c in GRAPH_MENTIONS.names}, GRAPH_MENTIONS)
    merges_table = from_columns({c: [m[c] for m in merges] for c in MERGES.names}, MERGES)
    nodes = _nodes(rows, node_of_key)
    edges, evidence, dropped = _edges(rows, relations, chunks)
    stats = {"merges": dict(Counter(m["rule"] for m in merges)), "relations dropped": dict(dropped),
             "nodes": len(nodes), "mentions": len(rows)}
    return Graph(from_rows(nodes, NODES), from_rows(edges, EDGES), graph_mentions, merges_table,
                 from_rows(evidence, EVIDENCE), stats)


def _tree_merges(between: dict, first_of_key: dict, node_of_key: dict) -> list[dict]:
    """One MERGES row per key joined by a fuzzy or judge pair: the accepted pairs form a forest
    over keys; each tree is walked from its canonical key, so every key's first mention is
    joined exactly once, to the key it was paired with."""
    adjacent: dict = defaultdict(list)
    for (etype, a, b), (rule, score) in sorted(between.items()):
        adjacent[(etype, a)].append(((etype, b), rule, score))
        adjacent[(etype, b)].append(((etype, a), rule, score))
    rows, seen = [], set()
    roots = sorted(adjacent, key=lambda k: (node_of_key[k], -len(k[1]), k[1]))
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        frontier = [root]
        while frontier:
            key = frontier.pop(0)
            for other, rule, score in adjacent[key]:
                if other not in seen:
                    seen.add(other)
                    rows.append(_merge(first_of_key[other], first_of_key[key], rule, score))
                    frontier.append(other)
    return rows


def _unique_mentions(mentions: pa.Table) -> list[dict]:
    rows, seen = [], set()
    for r in mentions.to_pylist():
        mid = mention_id(r["doc_id"], r["start"], r["end"], r["type"])
        if mid not in seen:
            seen.add(mid)
            r["mention_id"] = mid
            rows.append(r)
    rows.sort(key=lambda r: (r["doc_id"], r["start"], r["end"], r["type"]))
    return rows


def _short(etype: str, key: str, kind: str | None, index: dict) -> str | None:
    """The kind of short form a name is, if it abbreviates some full name of the corpus."""
    if kind == "single name":
        kinds = [k for k in ("surname", "first name") if (etype, k, key) in index]
        return kinds[0] if kinds else None
    if kind and (etype, kind, key) in index:
        return kind
    return None


def _resolve_short_forms(doc_id, rows, index, node_of_key, first_of_node, merges) -> None:
    full_in_doc: dict[str, list[dict]] = defaultdict(list)  # node id -> its full mentions here
    for r in rows:
        if r["short"] is None:
            full_in_doc[r["node_id"]].append(r)
    own: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["short"] is None:
            continue
        kinds = ("surname", "first name") if r["short"] in ("surname", "first name") else (r["short"],)
        corpus = [{node_of_key[(r["type"], k)] for k in index.get((r["type"], kind, r["key"]), ())} for kind in kinds]
        here = [{n for n in c if n in full_in_doc} for c in corpus]
        target, where = None, None
        for level, sets in (("document", here), ("corpus", corpus)):
            found = next((s for s in sets if s), set())
            if len(found) == 1:
                target, where = next(iter(found)), level
            if found:
                break  # candidates at this level: a unique one is taken, several are not guessed
        if target is not None:
            r["node_id"] = target
            kind = next(k for k, s in zip(kinds, here if where == "document" else corpus) if target in s)
            before = [m for m in full_in_doc.get(target, []) if m["start"] < r["start"]]
            joined = before[-1] if before else (full_in_doc.get(target) or [first_of_node[target]])[0]
            merges.append(_merge(r, joined, f"{kind} in {where}", None))
        else:  # ambiguous: a node of its own, per document
            key = (r["type"], r["key"])
            r["node_id"] = node_id(r["type"], f"{r['key']}@{doc_id}")
            r["own_key"] = f"{r['key']}@{doc_id}"
            rep = own.setdefault(key, r)
            if rep is not r:
                merges.append(_merge(r, rep, "ambiguous short form in document", None))


def _merge(r: dict, joined: dict, rule: str, score) -> dict:
    return {"node_id": r.get("node_id") or joined.get("node_id"), "mention_id": r["mention_id"],
            "joined_to": joined["mention_id"], "rule": rule, "score": score}


def _nodes(rows: list[dict], node_of_key: dict) -> list[dict]:
    canon: dict[str, str] = {}
    for (etype, key), nid in node_of_key.items():
        if nid not in canon or (-len(key), key) < (-len(canon[nid]), canon[nid]):
            canon[nid] = key
    by_node: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_node[r["node_id"]].append(r)
    nodes = []
    for nid in sorted(by_node):
        ms = by_node[nid]
        key = canon.get(nid)
        named = [m["text"] for m in ms if m["key"] == key] or [m["text"] for m in ms]
        counts = Counter(named)
        name = sorted(counts, key=lambda t: (-counts[t], -len(t), t))[0]
        nodes.append({"node_id": nid, "name": name, "type": ms[0]["type"],
                      "aliases": sorted({m["text"] for m in ms} - {name}),
                      "mention_count": len(ms), "doc_count": len({m["doc_id"] for m in ms})})
    return nodes


def _edges(rows: list[dict], relations: pa.Table, chunks: pa.Table | None):
    # (doc, chunk, name, type) and (doc, None, name, type) -> node of the first such mention
    names: dict[tuple, str] = {}
    for r in rows:
        names.setdefault((r["doc_id"], r["chunk_id"], r["name"], r["type"]), r["node_id"])
        names.setdefault((r["doc_id"], None, r["name"], r["type"]), r["node_id"])
    texts = {}
    if chunks is not None:
        texts = {c: (s, t) for c, s, t in zip(*(chunks.column(k).to_pylist() for k in ("chunk_id", "start", "text")))}

    def node(doc, chunk, name, etype):
        return names.get((doc, chunk, name, etype)) or names.get((doc, None, name, etype))

    counts: Counter = Counter()
    ids: dict[tuple, str] = {}
    evidence: dict[tuple, dict] = {}
    dropped: Counter = Counter()
    for rel in relations.to_pylist():
        h = node(rel["doc_id"], rel["chunk_id"], rel["head"], rel["head_type"])
        t = node(rel["doc_id"], rel["chunk_id"], rel["tail"], rel["tail_type"])
        if h is None or t is None:
            dropped["no mention of its head or tail"] += 1
            continue
        triple = (h, rel["type"], t)
        eid = ids.get(triple) or ids.setdefault(triple, edge_id(*triple))
        counts[(eid, h, rel["type"], t)] += 1
        text = ""
        if rel["chunk_id"] in texts:
            cstart, ctext = texts[rel["chunk_id"]]
            text = ctext[rel["start"] - cstart : rel["end"] - cstart]
        evidence.setdefault((eid, rel["doc_id"], rel["start"], rel["end"]),
                            {"edge_id": eid, "doc_id": rel["doc_id"], "start": rel["start"], "end": rel["end"],
                             "text": text})
    edges = [{"edge_id": e, "head": h, "tail": t, "type": ty, "count": n, "confidence": None}
             for (e, h, ty, t), n in sorted(counts.items())]
    return edges, [evidence[k] for k in sorted(evidence)], dropped
