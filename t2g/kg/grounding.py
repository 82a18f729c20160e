"""Grounding a model's graph in its chunk: every kept mention is a span of the document.

`ground_chunk` turns one chunk's answer ({"entities": [{text, type}], "relations": [{head,
tail, type}]}) into MENTIONS and RELATIONS rows at document-level character offsets:

- Every occurrence of a name in the chunk text is its own mention row; names are matched
  longest first, so "Smith" inside "John Smith" belongs to that mention and yields none.
  A name whose every occurrence lies inside a longer name of the same type is folded into
  it (relations naming it are rewritten to the longer name); if the longer name has another
  type, the name is dropped (`subsumed`).
- Matching is on word boundaries (no "Art" inside "Martin"), never cuts a letter from its
  combining marks (no "Zoe" in a decomposed "Zoë"), finds a composed name in decomposed text
  and the reverse (Unicode NFC / NFD), and is case-sensitive. Only when a
  name has no case-sensitive occurrence at all is it matched case-insensitively (the model
  often changes case: "acme corp" for "Acme Corp"); the mention's `text` is always the
  document's surface form, so `text == document[start:end]` holds either way.
- Dropped and counted: entities whose type was not requested (`unrequested type`), names
  not found in the chunk (`ungrounded`), relations of types not requested
  (`unrequested type`) and relations whose head or tail is not a kept name (`dangling`).
- A relation's evidence is the first sentence of the chunk holding a mention of both its
  head and its tail; else the shortest run of sentences covering one mention of each.

`merge_windows` dedupes what overlapping windows found twice.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa

from t2g.kg.scripts import unspaced
from t2g.kg.sentences import Splitter, regex_sentences
from t2g.kg.tables import MENTIONS, RELATIONS, from_rows


def ground_chunk(
    chunk: dict,
    graph: dict,
    entity_types: Iterable[str],
    relation_types: Iterable[str],
    *,
    splitter: Splitter = regex_sentences,
) -> tuple[list[dict], list[dict], Counter]:
    """MENTIONS rows, RELATIONS rows and the drops (by reason) of one chunk's answer."""
    text, base = chunk["text"], int(chunk["start"])
    etypes, rtypes = set(entity_types), set(relation_types)
    dropped: Counter = Counter()
    wanted: dict[tuple[str, str], None] = {}
    for e in graph.get("entities") or []:
        name, etype = str(e.get("text") or "").strip(), str(e.get("type") or "")
        if etype not in etypes:
            dropped["entity: unrequested type"] += 1
        elif not name:
            dropped["entity: ungrounded"] += 1
        else:
            wanted[(name, etype)] = None
    claimed: list[tuple[int, int, str, str]] = []  # local start, end, name, type
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    alias: dict[tuple[str, str], tuple[str, str]] = {}
    for name, etype in sorted(wanted, key=lambda k: (-len(k[0]), k)):
        found = _occurrences(text, name)
        if not found:
            dropped["entity: ungrounded"] += 1
            continue
        own, inside = [], []
        for s, e in found:
            holder = next((c for c in claimed if c[0] < e and s < c[1]), None)
            if holder is None or (holder[:2] == (s, e) and holder[3] != etype):
                own.append((s, e))  # same span, other type: the model's two readings both kept
            else:
                inside.append(holder)
        if own:
            spans[(name, etype)] = own
            claimed.extend((s, e, name, etype) for s, e in own)
        elif any(h[3] == etype for h in inside):
            alias[(name, etype)] = next((h[2], h[3]) for h in inside if h[3] == etype)
        else:
            dropped["entity: subsumed"] += 1
    mentions = [
        {
            "doc_id": chunk["doc_id"],
            "chunk_id": chunk["chunk_id"],
            "start": base + s,
            "end": base + e,
            "text": text[s:e],
            "type": etype,
            "name": name,
        }
        for (name, etype), found in spans.items()
        for s, e in found
    ]
    mentions.sort(key=lambda m: (m["start"], m["end"], m["type"]))

    by_name: dict[str, tuple[str, str]] = {}
    for name, etype in list(spans) + list(alias):
        by_name.setdefault(name, alias.get((name, etype), (name, etype)))
    sentences = [(s, len(text[s:e].rstrip()) + s) for s, e in splitter(text)] or [(0, len(text))]
    relations, seen = [], set()
    for r in graph.get("relations") or []:
        rtype = str(r.get("type") or "")
        head = by_name.get(str(r.get("head") or "").strip())
        tail = by_name.get(str(r.get("tail") or "").strip())
        if rtype not in rtypes:
            dropped["relation: unrequested type"] += 1
            continue
        if head is None or tail is None:
            dropped["relation: dangling"] += 1
            continue
        if (head, tail, rtype) in seen:
            dropped["relation: duplicate"] += 1
            continue
        seen.add((head, tail, rtype))
        s, e = _evidence(spans[head], spans[tail], sentences)
        relations.append(
            {
                "doc_id": chunk["doc_id"],
                "chunk_id": chunk["chunk_id"],
                "head": head[0],
                "head_type": head[1],
                "tail": tail[0],
                "tail_type": tail[1],
                "type": rtype,
                "start": base + s,
                "end": base + e,
            }
        )
    return mentions, relations, dropped


def _occurrences(text: str, name: str) -> list[tuple[int, int]]:
    # The name as the model wrote it, then composed or decomposed: a model answers "José"
    # composed (NFC) while a text from a PDF or a macOS file spells it "Jose" + U+0301 (NFD),
    # and every accented name was dropped as ungrounded. The span is the text's own form.
    for form in dict.fromkeys((name, unicodedata.normalize("NFD", name), unicodedata.normalize("NFC", name))):
        if found := _matches(text, form):
            return found
    return []


def _matches(text: str, name: str) -> list[tuple[int, int]]:
    # Word boundaries only where the name itself starts/ends with a word character of a
    # script that separates words, so "Acme Inc." still matches before a space, "(R)" matches
    # anywhere and "東京" inside "習近平が東京を訪問した" is found (t2g.kg.scripts).
    left = r"(?<!\w)" if re.match(r"\w", name) and not unspaced(name[0]) else ""
    right = r"(?!\w)" if re.search(r"\w$", name) and not unspaced(name[-1]) else ""
    pattern = left + re.escape(name) + right
    found = [m.span() for m in re.finditer(pattern, text) if _whole(text, *m.span(), bool(left))]
    if not found:
        found = [m.span() for m in re.finditer(pattern, text, re.IGNORECASE) if _whole(text, *m.span(), bool(left))]
    return found


def _mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _whole(text: str, start: int, end: int, bounded: bool) -> bool:
    # A combining mark (decomposed "ë" is "e" + U+0308, Thai vowel signs) belongs to the letter
    # before it but is no word character to `\w`: a span must not end before one nor start on
    # one, and where the name's start is a word boundary, not start after one ("cole" in "école").
    return not (
        (end < len(text) and _mark(text[end]))
        or _mark(text[start])
        or (bounded and start > 0 and _mark(text[start - 1]))
    )


def _evidence(
    heads: list[tuple[int, int]], tails: list[tuple[int, int]], sentences: list[tuple[int, int]]
) -> tuple[int, int]:
    def sentence_of(pos: int) -> int:
        return next((i for i, (s, e) in enumerate(sentences) if s <= pos < max(e, s + 1)), len(sentences) - 1)

    best = None
    for hs, he in heads:
        for ts, te in tails:
            a = sentence_of(min(hs, ts))
            b = sentence_of(max(he, te) - 1)
            span = (sentences[a][0], sentences[b][1])
            if best is None or (span[1] - span[0], span) < (best[1] - best[0], best):
                best = span
    return best


def merge_windows(mentions: pa.Table, relations: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Mentions and relations with what overlapping windows found twice removed.

    A mention is the same when (doc, start, end, type) is; a mention lying strictly inside a
    longer mention of the same document (a window that began mid-name) is dropped. A relation is
    the same when (doc, head, head type, tail, tail type, type, evidence span) is. The earliest
    chunk's row is kept.
    """
    rows = sorted(mentions.to_pylist(), key=lambda m: (m["doc_id"], m["start"], -m["end"], _index(m["chunk_id"])))
    kept: list[dict] = []
    seen: set = set()
    reach: dict[str, tuple[int, int]] = {}  # per document: (start, end) of the kept span reaching furthest
    for m in rows:
        key = (m["doc_id"], m["start"], m["end"], m["type"])
        if key in seen:
            continue
        rs, re_ = reach.get(m["doc_id"], (-1, -1))
        if m["end"] <= re_ and (rs, re_) != (m["start"], m["end"]):
            continue  # rows come by start, so the furthest-reaching kept span starts no later
        seen.add(key)
        kept.append(m)
        if m["end"] > re_:
            reach[m["doc_id"]] = (m["start"], m["end"])
    rel_seen: set = set()
    rels = []
    for r in sorted(relations.to_pylist(), key=lambda r: (r["doc_id"], _index(r["chunk_id"]))):
        key = (r["doc_id"], r["head"], r["head_type"], r["tail"], r["tail_type"], r["type"], r["start"], r["end"])
        if key not in rel_seen:
            rel_seen.add(key)
            rels.append(r)
    return from_rows(kept, MENTIONS), from_rows(rels, RELATIONS)


def _index(chunk_id: str) -> int:
    tail = chunk_id.rpartition("#")[2]
    return int(tail) if tail.isdigit() else 0


def ground_table(
    chunks: pa.Table, answers: list[dict], entity_types, relation_types
) -> tuple[pa.Table, pa.Table, Counter]:
    """Ground every chunk's answer (answers[i] belongs to chunks row i) and merge the windows."""
    if len(answers) != chunks.num_rows:
        raise ValueError(f"{len(answers)} answers for {chunks.num_rows} chunks: one answer per chunk row")
    mentions, relations, dropped = [], [], Counter()
    for chunk, graph in zip(chunks.to_pylist(), answers):
        m, r, d = ground_chunk(chunk, graph or {}, entity_types, relation_types)
        mentions += m
        relations += r
        dropped += d
    return (*merge_windows(from_rows(mentions, MENTIONS), from_rows(relations, RELATIONS)), dropped)


__all__ = ["ground_chunk", "merge_windows", "ground_table"]
