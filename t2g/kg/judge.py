"""The judge of uncertain fuzzy pairs (`resolve.judge`): one small question per pair to any
t2g.llm backend, through the per-request LLM cache like every other request.

A pair whose names score between `judge.threshold` and `resolve.fuzzy_threshold` ("Kortron
Labs" / "Kortran Lab", 0.87) is asked: 'Are "Kortron Labs" and "Kortran Lab" (type
organisation) the same real-world entity?', with a sentence where each name occurs, under
a JSON schema whose answer is {"same": true} or {"same": false}. A yes merges the pair (rule
`judge` in MERGES). An answer that is not that JSON, or a request that failed, counts as no
and is counted (`unparsed`, `failed`): a bad answer never merges and never stops the stage.

The question is built from the corpus alone, deterministically (each name's most frequent
surface form, its first sentences in document order), so a rerun sends the same requests
and the cache answers all of them. Pairs never cross types: blocks are per type
(t2g.kg.blocking), so the judge is never asked about a person and a place.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from t2g import llm
from t2g.kg.names import core
from t2g.kg.sentences import regex_sentences
from t2g.llm import cache as llm_cache

SCHEMA = {
    "type": "object",
    "properties": {"same": {"type": "boolean"}},
    "required": ["same"],
    "additionalProperties": False,
}
SYSTEM = (
    "You decide whether two names found in a corpus refer to the same real-world entity. "
    'Answer with JSON only: {"same": true} or {"same": false}.'
)
MAX_CONTEXT_CHARS = 300  # a quoted sentence is cut around its name past this


def question(etype: str, a: str, b: str, context_a: Sequence[str], context_b: Sequence[str]) -> str:
    lines = [f'Are "{a}" and "{b}" (type {etype}) the same real-world entity?']
    for name, context in ((a, context_a), (b, context_b)):
        if context:
            lines += ["", f'Where "{name}" occurs:', *(f"- {s}" for s in context)]
    lines += ["", 'Answer {"same": true} or {"same": false}.']
    return "\n".join(lines)


def parse(result: llm.Result) -> bool | None:
    """The answer's `same`; None when the text is not {"same": <bool>}."""
    try:
        answer = json.loads(result.text.strip())
    except (ValueError, AttributeError):
        return None
    same = answer.get("same") if isinstance(answer, dict) else None
    return same if isinstance(same, bool) else None


class LLMJudge:
    """judge(pairs) -> list[bool] (t2g.kg.blocking.Judge) asking `cfg`'s model. `mentions`
    (MENTIONS) give each key its surface form and `chunks` (CHUNKS) its sentences.
    `summary()`: what it asked and how it was answered, and the LLM accounting."""

    def __init__(self, cfg: Any, mentions: pa.Table, chunks: pa.Table | None = None, api_key: str | None = None):
        self.cfg, self.mentions, self.chunks, self.api_key = cfg, mentions, chunks, api_key
        self.counts: Counter[str] = Counter()
        self.accounting: dict[str, Any] = {}

    def __call__(self, pairs: Sequence[tuple[str, str, str]]) -> list[bool]:
        if not pairs:
            return []
        names = self._names({(t, k) for t, a, b in pairs for k in (a, b)})
        sampling = llm.Sampling(self.cfg.max_new_tokens, self.cfg.temperature, self.cfg.top_p, self.cfg.seed)
        schema = SCHEMA if self.cfg.constrained else None
        requests = []
        for etype, a, b in pairs:
            (sa, ca), (sb, cb) = names[(etype, a)], names[(etype, b)]
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question(etype, sa, sb, ca, cb)},
            ]
            requests.append(llm.Request(messages=messages, schema=schema, sampling=sampling))
        results, self.accounting = llm_cache.generate(self.cfg, str(self.cfg.model), requests, self.api_key)
        if len(results) != len(requests):  # the backend protocol's promise: never lose a pair silently
            raise RuntimeError(
                f"judge backend {self.cfg.backend} returned {len(results)} results for {len(requests)} requests"
            )
        answers = []
        for res in results:
            same = None if res.error else parse(res)
            self.counts["asked"] += 1
            self.counts["failed" if res.error else "unparsed" if same is None else "same" if same else "not same"] += 1
            answers.append(bool(same))
        return answers

    def summary(self) -> dict[str, Any]:
        out = {k: self.counts.get(k, 0) for k in ("asked", "same", "not same", "unparsed", "failed")}
        return {**out, "backend": self.cfg.backend, "model": self.cfg.model}

    def _names(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, list[str]]]:
        """(type, key) -> (its most frequent surface form, up to context_sentences sentences
        holding it, each from another document, in document order)."""
        cols = {c: self.mentions.column(c).to_pylist() for c in ("doc_id", "chunk_id", "start", "end", "text", "type")}
        key_of = {f: core(*f) for f in set(zip(cols["text"], cols["type"]))}
        surfaces: dict[tuple[str, str], Counter] = defaultdict(Counter)
        places: dict[tuple[str, str], list[tuple]] = defaultdict(list)
        for doc, chunk, start, end, text, etype in zip(*cols.values()):
            k = (etype, key_of[(text, etype)])
            if k in wanted:
                surfaces[k][text] += 1
                places[k].append((doc, start, end, chunk))
        chunk_text = self._chunk_texts({p[3] for k in wanted for p in places.get(k, ())})
        out = {}
        for k in wanted:
            counts = surfaces.get(k) or Counter({k[1]: 1})
            surface = min(counts, key=lambda t: (-counts[t], -len(t), t))
            context, docs = [], set()
            for doc, start, end, chunk in sorted(places.get(k, ())):
                if len(context) >= self.cfg.context_sentences:
                    break
                if doc in docs or chunk not in chunk_text:
                    continue
                docs.add(doc)
                context.append(_sentence(*chunk_text[chunk], start, end))
            out[k] = (surface, context)
        return out

    def _chunk_texts(self, chunk_ids: set[str]) -> dict[str, tuple[int, str]]:
        if self.chunks is None or not self.cfg.context_sentences or not chunk_ids:
            return {}
        ids = self.chunks.column("chunk_id").to_pylist()
        rows = [i for i, c in enumerate(ids) if c in chunk_ids]
        table = self.chunks.take(pa.array(rows, pa.int64())).select(["chunk_id", "start", "text"])
        return {c: (s, t) for c, s, t in zip(*(table.column(n).to_pylist() for n in table.column_names))}


def _sentence(offset: int, text: str, start: int, end: int) -> str:
    """The sentence of `text` (a chunk starting at document offset `offset`) that holds the
    mention at document offsets [start, end), whitespace collapsed, cut around the mention
    past MAX_CONTEXT_CHARS."""
    s, e = start - offset, end - offset
    lo, hi = next(((a, b) for a, b in regex_sentences(text) if a <= s < b), (0, len(text)))
    if hi - lo > MAX_CONTEXT_CHARS:
        half = max(0, (MAX_CONTEXT_CHARS - (e - s)) // 2)
        lo, hi = max(lo, s - half), min(hi, e + half)
    return " ".join(text[lo:hi].split())
