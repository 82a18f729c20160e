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
    "Merkel" when "Angela Merkel" is the only Merkel); never a first name alone ("Barry" in a
    document without Barry Goldwater is no one in particular). A person's full names that
    differ by middle names, initials or a missing generational suffix join (`alias: middle
    name or suffix`: "John F. Kennedy" = "John Kennedy"; never "Jr." with "III"), unless the
    shorter one fits two. When two or more full names fit (John and
    Mary Smith both in the document, or, with neither in the document, both in the corpus),
    the short form is not guessed: it becomes a node of its own for that document (all its
    mentions in the document together, key "<name>@<doc_id>").
(c) `fuzzy`: spelling variants of full names, by blocking keys (`t2g.kg.blocking`).
(d) `judge`: an optional callable for the uncertain fuzzy pairs, judge(pairs) -> list[bool]
    (a recipe's `resolve.judge` asks an LLM: t2g.kg.judge).

Never across types: every key, block and index is per entity type. "Jordan" the person and
"Jordan" the country are two nodes.

Node ids: node_id(type, canonical key); the canonical key is the cluster's longest full-name
key (ties: alphabetical), independent of counts and document order, so the same corpus gives
the same ids and adding documents changes a node's id only when its cluster gains a longer
name or merges with another node. The displayed name is the cluster's most frequent full-name
surface form; for a person, a form without a leading title first ("Anthony Fauci" over the
more frequent "Dr. Anthony Fauci"); a form in capitals ("BUENOS AIRES") or ending a sentence
("Africa.") only when there is no other.

Memory: the mentions (columnar), one entry per distinct name (union-find, indexes) and the
accepted pairs. Fuzzy pairs come from blocks, which the stage may compute sharded and pass in
as `pairs`; no step builds all pairs of mentions.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t2g.kg.blocking import Judge, concat_pairs, fuzzy_pairs, settle
from t2g.kg.edges import edges_and_evidence
from t2g.kg.names import (
    ABBREVIATIONS,
    acronym_source,
    core,
    has_title,
    norm,
    person_parts,
    rule_between,
    short_keys,
    short_kind,
    untitled,
    without_generation,
)
from t2g.kg.tables import GRAPH_MENTIONS, MERGES, NODES, from_columns, mention_ids, node_id


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
    tier (a) alone. `pairs`: fuzzy pairs computed elsewhere (sharded blocks), their rule
    `uncertain` rows settled by `judge` (left out without one); `chunks`: CHUNKS, to fill the
    evidence text."""
    # Columns, not rows: one Python list per column of the distinct mentions (sorted), and the
    # per-mention results (key, short form, node) as lists beside them; a dict per mention cost
    # more than everything else resolve does (issue 26's scale figure).
    m = _unique_mentions(mentions)
    texts, types, docs, starts, mids = m["text"], m["type"], m["doc_id"], m["start"], m["mention_id"]
    keyf = core if aliases else (lambda t, ty: norm(t))
    # Everything about a name depends on its (surface, type) only: computed once per distinct one.
    forms: dict[tuple[str, str], tuple[str, str, str | None]] = {}
    for f in set(zip(texts, types)):
        key = keyf(*f)
        forms[f] = (key, norm(f[0]), short_kind(key, f[1], f[0]) if aliases else None)

    # Which keys are full names: everything but the short forms that abbreviate some full name.
    index: dict[tuple[str, str, str], set[str]] = defaultdict(set)  # (type, kind, short) -> full keys
    if aliases:
        # A full name answers to the short forms of its key and of its whole normalised text
        # ("ZDG" for "Zentek Dynamics Group", whose key drops the suffix "Group").
        candidates = {(etype, key, whole) for (_, etype), (key, whole, kind) in forms.items() if kind is None}
        for etype, key, whole in candidates:
            whole_keys = short_keys(acronym_source(whole), etype) if etype != "person" else []
            for kind, short in short_keys(key, etype) + whole_keys:
                index[(etype, kind, short)].add(key)
        # A name written with initials that abbreviates no full name is one ("J.D. Tippit"):
        # its surname is a short form of it ("Officer Tippit").
        for (_, etype), (key, _, kind) in sorted(forms.items()):
            if kind == "initials" and _short(etype, key, kind, index) is None:
                index[(etype, "surname", without_generation(key).split()[-1])].add(key)
    short_of = {f: (key, _short(f[1], key, kind, index)) for f, (key, _, kind) in forms.items()}
    keyed = [short_of[f] for f in zip(texts, types)]
    keys = [k for k, _ in keyed]
    shorts = [s for _, s in keyed]
    full_keys = {(etype, key) for (_, etype), (key, short) in short_of.items() if short is None}

    uf = _UnionFind()
    merges_between: dict[tuple, tuple[str, float | None]] = {}
    if aliases and fuzzy:
        if pairs is None:
            table = fuzzy_pairs(mentions, fuzzy_threshold=fuzzy_threshold, judge_threshold=judge_threshold, judge=judge)
        else:  # from shards: one row per pair in a fixed order, the uncertain ones judged here
            table = settle(concat_pairs([pairs]), judge)
        for etype, a, b, rule, score in zip(
            *(table.column(c).to_pylist() for c in ("type", "a", "b", "rule", "score"))
        ):
            if (etype, a) in full_keys and (etype, b) in full_keys and uf.union((etype, a), (etype, b)):
                merges_between[(etype, a, b)] = (rule, score)

    if aliases:
        for a, b in _variant_pairs(full_keys):
            if uf.union(("person", a), ("person", b)):
                merges_between[("person", *sorted((a, b)))] = ("alias: middle name or suffix", None)

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

    # Full names: their node, and a merge to the first mention of the same key.
    nodes_of: list[str | None] = [None] * len(mids)
    merges: list[tuple] = []  # (node_id, mention_id, joined_to, rule, score)
    first_of_key: dict[tuple[str, str], int] = {}  # -> row
    for i, (etype, key, short) in enumerate(zip(types, keys, shorts)):
        if short is None:
            fk = (etype, key)
            nodes_of[i] = node_of_key[fk]
            rep = first_of_key.setdefault(fk, i)
            if rep != i:
                merges.append((nodes_of[i], mids[i], mids[rep], rule_between(texts[rep], texts[i]), None))
    first_of_node: dict[str, int] = {}
    for fk in sorted(first_of_key):
        first_of_node.setdefault(node_of_key[fk], first_of_key[fk])
    merges += _tree_merges(merges_between, first_of_key, node_of_key, mids)

    # Short forms, document by document (rows are sorted by document: each one's rows are a run).
    doc_short: dict[str, list[int]] = defaultdict(list)
    for i, short in enumerate(shorts):
        if short is not None:
            doc_short[docs[i]].append(i)
    ctx = _Rows(texts, types, docs, starts, mids, keys, shorts, nodes_of)
    for doc_id, short_rows in doc_short.items():
        lo, hi = bisect_left(docs, doc_id), bisect_right(docs, doc_id)
        _resolve_short_forms(doc_id, range(lo, hi), short_rows, ctx, index, node_of_key, first_of_node, merges)

    m["node_id"] = nodes_of
    graph_mentions = from_columns(m, GRAPH_MENTIONS)
    merges_table = _table(merges, MERGES)
    nodes = _nodes(nodes_of, texts, keys, types, docs, node_of_key)
    named = pa.table({c: m[c] for c in ("doc_id", "chunk_id", "name", "type", "node_id")}, schema=_NAMED)
    edges, evidence, dropped = edges_and_evidence(named, relations, chunks)
    stats = {
        "merges": dict(Counter(mg[3] for mg in merges)),
        "relations dropped": dict(dropped),
        "nodes": nodes.num_rows,
        "mentions": len(mids),
    }
    return Graph(nodes, edges, graph_mentions, merges_table, evidence, stats)


def _variant_pairs(full_keys: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pairs of a person's full names with the same first and last name whose middle names
    agree (a whole name, its initial, or none: "John Fitzgerald Kennedy", "John F. Kennedy",
    "John Kennedy") and whose generations agree or one has none ("Jr." and "III" never).
    The most specific names first; a name that fits two groups (George W. and George H. W.
    Bush for "George Bush", Martin Luther King Jr. and III for "Martin Luther King") joins
    neither."""
    groups: dict[tuple[str, str], list[tuple[str, tuple[str, ...], str]]] = defaultdict(list)
    for etype, key in full_keys:
        parts = person_parts(key) if etype == "person" else None
        if parts:
            groups[(parts[0], parts[2])].append((key, parts[1], parts[3]))
    pairs = []
    for _, members in sorted(groups.items()):
        clusters: list[list[tuple[str, tuple[str, ...], str]]] = []
        for key, middle, gen in sorted(members, key=lambda m: (-_detail(m[1], m[2]), m[0])):
            fits = [c for c in clusters if all(_agree(middle, gen, m, g) for _, m, g in c)]
            if len(fits) == 1:
                pairs.append((fits[0][0][0], key))
                fits[0].append((key, middle, gen))
            else:
                clusters.append([(key, middle, gen)])
    return pairs


def _detail(middle: tuple[str, ...], gen: str) -> int:
    return sum(2 if len(t) > 1 else 1 for t in middle) + bool(gen)


def _agree(m1: tuple[str, ...], g1: str, m2: tuple[str, ...], g2: str) -> bool:
    if g1 and g2 and g1 != g2:
        return False
    if not m1 or not m2:
        return True
    return len(m1) == len(m2) and all(a == b or (min(len(a), len(b)) == 1 and a[0] == b[0]) for a, b in zip(m1, m2))


def _tree_merges(between: dict, first_of_key: dict, node_of_key: dict, mids: list[str]) -> list[tuple]:
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
                    rows.append((node_of_key[other], mids[first_of_key[other]], mids[first_of_key[key]], rule, score))
                    frontier.append(other)
    return rows


_KEY = ("doc_id", "start", "end", "type")
_NAMED = pa.schema([(c, pa.string()) for c in ("doc_id", "chunk_id", "name", "type", "node_id")])


def _unique_mentions(mentions: pa.Table) -> dict[str, list]:
    """GRAPH_MENTIONS' columns but node_id, as lists: one row per (document, start, end, type)
    (its first in the table: overlapping chunks give a span twice), sorted by those four.
    Sorted and deduplicated in Arrow; only the kept rows become Python values."""
    n = mentions.num_rows
    table = mentions.select(["chunk_id", "text", "name", *_KEY]).append_column(
        "_row", pa.array(np.arange(n, dtype=np.int64))
    )
    table = table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in (*_KEY, "_row")]))
    if n > 1:
        same = None
        for c in _KEY:
            col = table.column(c)
            eq = pc.fill_null(pc.equal(col.slice(1), col.slice(0, n - 1)), False)
            same = eq if same is None else pc.and_(same, eq)
        keep = np.concatenate([[True], ~np.asarray(same.combine_chunks(), dtype=bool)])
        table = table.filter(pa.array(keep))
    cols = {c: table.column(c).to_pylist() for c in ("doc_id", "chunk_id", "start", "end", "text", "type", "name")}
    cols["mention_id"] = mention_ids(*(cols[c] for c in _KEY))
    return cols


class _Rows(NamedTuple):
    texts: list
    types: list
    docs: list
    starts: list
    mids: list
    keys: list
    shorts: list
    nodes: list


def _short(etype: str, key: str, kind: str | None, index: dict) -> str | None:
    """The kind of short form a name is, if it abbreviates some full name of the corpus."""
    key = without_generation(key) if etype == "person" else key
    if kind == "single name":
        kinds = [k for k in ("surname", "first name") if (etype, k, key) in index]
        return kinds[0] if kinds else None
    if kind and (etype, kind, key) in index:
        return kind
    return None


def _resolve_short_forms(doc_id, doc_rows, short_rows, c: _Rows, index, node_of_key, first_of_node, merges) -> None:
    """The short forms of one document (`short_rows`, among its rows `doc_rows`), in order."""
    full_in_doc: dict[str, list[int]] = defaultdict(list)  # node id -> its full mentions here
    for i in doc_rows:
        if c.shorts[i] is None:
            full_in_doc[c.nodes[i]].append(i)
    own: dict[tuple[str, str], int] = {}
    for i in short_rows:
        etype, key, short = c.types[i], c.keys[i], c.shorts[i]
        looked_up = without_generation(key) if etype == "person" else key
        kinds = ("surname", "first name") if short in ("surname", "first name") else (short,)
        # A first name alone names someone only after their full name in the same document:
        # across a corpus "Barry" or "President Kim" is anyone of that first name.
        fits = [{node_of_key[(etype, k)] for k in index.get((etype, kind, looked_up), ())} for kind in kinds]
        here = [{n for n in s if n in full_in_doc} for s in fits]
        corpus = [s if kind != "first name" else set() for kind, s in zip(kinds, fits)]
        target, where = None, None
        for level, sets in (("document", here), ("corpus", corpus)):
            found = next((s for s in sets if s), set())
            if len(found) == 1:
                target, where = next(iter(found)), level
            if found:
                break  # candidates at this level: a unique one is taken, several are not guessed
        if target is not None:
            c.nodes[i] = target
            kind = next(k for k, s in zip(kinds, here if where == "document" else corpus) if target in s)
            before = [j for j in full_in_doc.get(target, []) if c.starts[j] < c.starts[i]]
            joined = before[-1] if before else (full_in_doc.get(target) or [first_of_node[target]])[0]
            merges.append((target, c.mids[i], c.mids[joined], f"{kind} in {where}", None))
        else:  # ambiguous: a node of its own, per document
            c.nodes[i] = node_id(etype, f"{key}@{doc_id}")
            rep = own.setdefault((etype, key), i)
            if rep != i:
                merges.append((c.nodes[i], c.mids[i], c.mids[rep], "ambiguous short form in document", None))


def _nodes(nodes_of: list, texts: list, keys: list, types: list, docs: list, node_of_key: dict) -> pa.Table:
    """NODES, sorted by id. Counted over (node, surface, key) and (node, document) pairs, so the
    per-node work is over its distinct names, not its mentions."""
    forms: dict[str, list[tuple[str, str, int]]] = defaultdict(list)  # node -> (surface, key, count)
    for (nid, text, key), n in Counter(zip(nodes_of, texts, keys)).items():
        forms[nid].append((text, key, n))
    mention_count = Counter(nodes_of)
    doc_count = Counter(nid for nid, _ in set(zip(nodes_of, docs)))
    type_of = dict(zip(reversed(nodes_of), reversed(types)))  # the type of the node's first mention
    cols: dict[str, list] = {c: [] for c in NODES.names}
    for nid in sorted(forms):
        etype = type_of[nid]
        # Full names, not the short forms that joined them (all forms when there is none).
        named = [f for f in forms[nid] if (etype, f[1]) in node_of_key] or forms[nid]
        counts: Counter = Counter()
        spelled: dict[str, int] = {}  # the length of a surface's key: the fuller name wins a tie
        for text, k, n in named:
            counts[text] += n
            spelled[text] = len(k)
        # The most frequent full name, but a person's without a title ("Anthony Fauci", not
        # "Dr. Anthony Fauci": the title is a role, not the name), and not a dateline's capitals
        # ("BUENOS AIRES") or a sentence's last word ("Africa.") when another form exists.
        titled = has_title if etype == "person" else (lambda t: False)
        name = min(counts, key=lambda t: (titled(t), _shouted(t), _ragged(t), -counts[t], -spelled[t], -len(t), t))
        if etype == "person":  # titles only: the name without one ("Angela Merkel")
            name = untitled(name)
        for c, v in zip(
            NODES.names,
            (
                nid,
                name,
                type_of[nid],
                sorted({t for t, _, _ in forms[nid]} - {name}),
                mention_count[nid],
                doc_count[nid],
            ),
        ):
            cols[c].append(v)
    return from_columns(cols, NODES)


def _shouted(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and all(ch.isupper() for ch in letters) and (" " in text.strip() or len(letters) >= 7)


def _ragged(text: str) -> bool:
    """Ends in a comma, colon or semicolon, or in a full stop after a word that is not an
    abbreviation ("Africa." but not "U.S.", "Inc.", "Jr.", "St.")."""
    text = text.strip()
    if text.endswith((",", ";", ":")):
        return True
    last = text.split()[-1] if text else ""
    return last.endswith(".") and "." not in last[:-1] and len(last) > 3 and norm(last) not in ABBREVIATIONS


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    """Row tuples in the schema's column order to a table."""
    return from_columns(
        dict(zip(schema.names, map(list, zip(*rows)))) if rows else {c: [] for c in schema.names}, schema
    )
