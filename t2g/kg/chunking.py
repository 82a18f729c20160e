"""Token-aware windows over a document, with overlap, cut at sentence boundaries when it can.

Every chunk is a span of its document: `text == document[start:end]`, and the chunks of a
document cover it from its first character to its last (an empty document has no chunk).

How a document is cut:
1. It is split into units that tile it: sentences (`t2g.kg.sentences`, pluggable); a sentence
   over the budget becomes its words (each with its trailing whitespace); a word over the
   budget becomes the longest character pieces that fit.
2. A window takes units from its first one while `count_tokens(window text) <= max_tokens`
   (tokens are counted on the real text, so a tokenizer that merges across units is honoured).
3. The next window starts at the earliest unit of the previous one such that the text from
   there to the previous window's end counts at most `overlap_tokens`, and always after the
   previous window's first unit, such that the new window still reaches past the previous one
   (progress). So consecutive chunks share whole sentences when
   they fit in the overlap, and share nothing rather than exceed it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pyarrow as pa

from t2g.kg.scripts import UNSPACED_CLASS
from t2g.kg.sentences import Splitter, regex_sentences
from t2g.kg.tables import CHUNKS, from_rows

CountTokens = Callable[[str], int]
_WORD = re.compile(r"\S+\s*|\s+")
_TOKEN = re.compile(f"[{UNSPACED_CLASS}]|[^\\s{UNSPACED_CLASS}]+")


def words(text: str) -> int:
    """A token count without a tokenizer: whitespace-separated words, and each character of a
    script written without spaces (t2g.kg.scripts: a Chinese document is not one word)."""
    if text.isascii():
        return len(text.split())
    return len(_TOKEN.findall(text))


def chunk_document(
    doc_id: str,
    text: str,
    max_tokens: int,
    overlap_tokens: int,
    count_tokens: CountTokens = words,
    *,
    splitter: Splitter = regex_sentences,
) -> list[dict]:
    """The CHUNKS rows of one document (see the module docstring)."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1 (got {max_tokens})")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be >= 0 and < max_tokens={max_tokens} (got {overlap_tokens})")
    units = list(_units(text, max_tokens, count_tokens, splitter))
    rows: list[dict] = []
    i = 0
    while i < len(units):
        j = i + 1  # units[i] fits alone by construction
        while j < len(units) and count_tokens(text[units[i][0] : units[j][1]]) <= max_tokens:
            j += 1
        start, end = units[i][0], units[j - 1][1]
        rows.append(
            {
                "doc_id": doc_id,
                "chunk_id": f"{doc_id}#{len(rows)}",
                "chunk_index": len(rows),
                "start": start,
                "end": end,
                "text": text[start:end],
            }
        )
        if j == len(units):
            break
        nxt = j
        if overlap_tokens:
            # The next window must share at most the overlap and still reach past this one.
            for k in range(i + 1, j):
                if (
                    count_tokens(text[units[k][0] : end]) <= overlap_tokens
                    and count_tokens(text[units[k][0] : units[j][1]]) <= max_tokens
                ):
                    nxt = k
                    break
        i = nxt
    return rows


def chunk_table(
    docs: pa.Table,
    max_tokens: int,
    overlap_tokens: int,
    count_tokens: CountTokens = words,
    *,
    splitter: Splitter = regex_sentences,
) -> pa.Table:
    """CHUNKS of a table with columns `id` and `text` (other columns are ignored)."""
    missing = {"id", "text"} - set(docs.column_names)
    if missing:
        raise ValueError(f"documents need columns 'id' and 'text'; missing {sorted(missing)} in {docs.column_names}")
    rows: list[dict] = []
    for doc_id, text in zip(docs.column("id").to_pylist(), docs.column("text").to_pylist()):
        rows.extend(
            chunk_document(str(doc_id), text or "", max_tokens, overlap_tokens, count_tokens, splitter=splitter)
        )
    return from_rows(rows, CHUNKS)


def _units(text: str, budget: int, count: CountTokens, splitter: Splitter) -> Iterable[tuple[int, int]]:
    for s, e in splitter(text):
        if count(text[s:e]) <= budget:
            yield s, e
            continue
        for m in _WORD.finditer(text, s, e):
            ws, we = m.span()
            if count(text[ws:we]) <= budget:
                yield ws, we
            else:
                yield from _pieces(text, ws, we, budget, count)


def _pieces(text: str, s: int, e: int, budget: int, count: CountTokens) -> Iterable[tuple[int, int]]:
    """The longest prefixes of text[s:e] that fit, one after another: lengths doubled until one
    does not fit, then a binary search between the last two. Searching up to `e` at once cost
    counts of the whole rest of the word per piece, quadratic in a long word (a 5 MB text
    without a space or full stop); doubling costs about the piece's own length."""
    while s < e:
        lo, hi = s + 1, e
        if count(text[s:lo]) > budget:
            raise ValueError(
                f"max_tokens={budget} is too small: one character {text[s]!r} counts {count(text[s:lo])} tokens"
            )
        while lo < e:
            longer = min(s + 2 * (lo - s), e)
            if count(text[s:longer]) > budget:
                hi = longer - 1
                break
            lo = longer
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[s:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        yield s, lo
        s = lo
