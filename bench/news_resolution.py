"""Entity resolution on real annotated text (gold mentions given), read by hand: news text
has no gold clusters, so this lists what resolution joined rather than scoring it.

Reads interchange JSONL (t2g.sources.annotated: id, text, entities [{text, type}]), for
example CoNLL04's train and dev sets; every word-bounded occurrence of a gold entity's text
is a mention (one nested in a longer one's occurrence is skipped). Types are kept as the file
writes them, `organization` spelled `organisation`.

    T2G_NEWS_JSONL=train.jsonl,dev.jsonl python -m bench news_resolution
    T2G_NEWS_JSONL=... T2G_NEWS_DUMP=out.txt python -m bench news_resolution   # every merged node

Figures: documents, mentions, nodes, merges by rule, and samples of the joins made by the
rules a reader should check (fuzzy, middle name or suffix, surname and acronym in corpus).
`--smoke` runs on a few documents of the toy world with identities.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g.kg.resolve import resolve
from t2g.kg.tables import MENTIONS, RELATIONS

ENV, DUMP_ENV = "T2G_NEWS_JSONL", "T2G_NEWS_DUMP"
CHECKED_RULES = ("fuzzy", "alias: middle name or suffix", "surname in corpus", "acronym in corpus")
SAMPLES = 12


def run(smoke: bool = False) -> dict[str, Any]:
    if smoke:
        from t2g.kg import identities

        docs = [{"id": d["id"], "text": d["text"], "entities": d["mentions"]} for d in identities.documents(20)]
    else:
        given = os.environ.get(ENV)
        if not given:
            raise SystemExit(f"bench news_resolution reads annotated JSONL: set {ENV}=PATH[,PATH...]")
        docs = [json.loads(line) for p in given.split(",") for line in Path(p).read_text("utf-8").splitlines()]
    return measure(docs, os.environ.get(DUMP_ENV))


def measure(docs: list[dict], dump: str | None = None) -> dict[str, Any]:
    mentions = mention_table(docs)
    graph = resolve(mentions, pa.Table.from_pylist([], schema=RELATIONS))
    text_of = dict(zip(graph.mentions.column("mention_id").to_pylist(), graph.mentions.column("text").to_pylist()))
    doc_of = dict(zip(graph.mentions.column("mention_id").to_pylist(), graph.mentions.column("doc_id").to_pylist()))
    joins: dict[str, list[str]] = defaultdict(list)
    for mid, joined, rule in zip(*(graph.merges.column(c).to_pylist() for c in ("mention_id", "joined_to", "rule"))):
        if rule in CHECKED_RULES:
            joins[rule].append(f"{text_of[mid]} ({doc_of[mid]}) -> {text_of[joined]} ({doc_of[joined]})")
    if dump:
        _dump(graph, Path(dump))
    return {
        "documents": len(docs),
        "mentions": mentions.num_rows,
        "nodes": graph.nodes.num_rows,
        "merges_by_rule": dict(sorted(graph.stats["merges"].items())),
        "samples": {rule: sorted(set(rows))[:SAMPLES] for rule, rows in sorted(joins.items())},
    }


def mention_table(docs: list[dict]) -> pa.Table:
    rows = []
    for d in docs:
        spans = sorted(
            {
                (m.start(), m.end(), e["text"], _type(e["type"]))
                for e in d.get("entities") or []
                for m in re.finditer(r"(?<!\w)" + re.escape(e["text"]) + r"(?!\w)", d["text"])
            }
        )
        for s, e, text, etype in spans:
            if any(s2 <= s and e <= e2 and e2 - s2 > e - s for s2, e2, _, _ in spans):
                continue  # "U.S." inside "U.S. Senate"
            rows.append({"doc_id": d["id"], "chunk_id": f"{d['id']}#0", "start": s, "end": e, "text": text,
                         "type": etype, "name": text})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=MENTIONS)


def _type(name: str) -> str:
    return "organisation" if name.lower() == "organization" else name


def _dump(graph, path: Path) -> None:
    """Every node joining more than one distinct surface form, with its forms."""
    forms: dict[str, set[str]] = defaultdict(set)
    for nid, text in zip(graph.mentions.column("node_id").to_pylist(), graph.mentions.column("text").to_pylist()):
        forms[nid].add(text)
    names = dict(zip(graph.nodes.column("node_id").to_pylist(), graph.nodes.column("name").to_pylist()))
    lines = [f"{names[n]}: {' | '.join(sorted(f))}" for n, f in sorted(forms.items(), key=lambda kv: names[kv[0]])
             if len(f) > 1]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
