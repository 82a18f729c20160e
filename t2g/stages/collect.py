"""Collect: read every configured source into one table of documents.

Each document gets a stable id (a digest of its normalised text), so the same text has
the same id in every run and from every source. Nothing disappears silently: a record
that cannot be a document (bad bytes, not JSON, no text, too long, invalid gold, a
duplicate) goes to the `quarantine` side table with its reason, and always

    rows_in == rows_out + quarantined.

Duplicates: exact ones share an id; near ones are found with MinHash over word shingles
and LSH (datasketch). The first document seen wins, sources taken in recipe order. A
source's own id (`id_field`, an annotated document's id) names one document: a second
row of the same source under an id already kept, with a different text, is quarantined
as "duplicate id, different text" (the same text is an exact duplicate).

Every row first goes through t2g.sources.clean (one rule for control characters in every
source; `meta` stored as strict JSON).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from t2g.config import CollectConfig, Source
from t2g.metrics import normalise
from t2g.sources import Row, read_source
from t2g.sources.base import EMPTY_TEXT, TOO_LONG, show_raw
from t2g.sources.clean import meta_json, scrub, strict_json
from t2g.stage import StageResult

MAIN_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("meta", pa.string(), nullable=False),
        pa.field("gold", pa.string()),
        pa.field("entity_types", pa.list_(pa.string())),
        pa.field("relation_types", pa.list_(pa.string())),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string()),
    ]
)

CHUNK_ROWS = 10_000

EXACT_DUPLICATE = "exact duplicate"
NEAR_DUPLICATE = "near duplicate"
DUPLICATE_ID = "duplicate id, different text"
__all__ = ["TOO_LONG", "EXACT_DUPLICATE", "NEAR_DUPLICATE", "DUPLICATE_ID", "collect", "doc_id"]


def doc_id(text: str) -> str:
    """Stable document id: the same text up to case, width and spacing, the same id."""
    return _digest(normalise(text))


def _digest(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:16]


def collect(cfg: CollectConfig) -> StageResult:
    """Read, check and deduplicate the documents of every source in `cfg.sources`.

    Raises SourceError now, before any document is read, when a source cannot be opened.

    `main` is a one-shot iterator of tables of at most CHUNK_ROWS rows (an empty table
    with MAIN_SCHEMA when nothing survives), so a large corpus is never held twice. The
    `quarantine` side table and `summary` are filled in when that iterator is exhausted
    (until then they are empty): consume `main` fully first, then read `side` and
    `summary`, as the store does when it writes `main` before the side tables.
    """
    opened = [(src, read_source(src, cfg.max_chars)) for src in cfg.sources]
    side: dict[str, pa.Table] = {}
    summary: dict[str, Any] = {}
    return StageResult(main=_documents(cfg, opened, side, summary), side=side, summary=summary)


def _documents(
    cfg: CollectConfig,
    opened: list[tuple[Source, Iterator[Row]]],
    side: dict[str, pa.Table],
    summary: dict[str, Any],
) -> Iterator[pa.Table]:
    """The main tables; on exhaustion, fills `side` and `summary` in place."""
    seen: set[str] = set()
    near = (
        NearDuplicates(cfg.near_duplicate_threshold, cfg.num_perm, cfg.shingle_words)
        if cfg.near_duplicate_threshold is not None
        else None
    )
    chunk = _Columns(MAIN_SCHEMA)
    quarantine = _Columns(QUARANTINE_SCHEMA)
    per_source: dict[str, dict[str, Any]] = {}
    yielded = False

    for src, rows in opened:
        tally = Counter()
        reasons: Counter[str] = Counter()
        ids: dict[str, str] = {}  # this source's own ids -> the kept document's id
        for row in rows:
            tally["rows_in"] += 1
            row = scrub(row)
            reason, duplicate_of, key = _check(row, cfg.max_chars, seen, near, ids)
            if reason is not None:
                reasons[reason] += 1
                raw = row.raw if row.problem else row.text
                quarantine.add(
                    source=src.name, row=row.row, reason=reason, raw=show_raw(raw), duplicate_of=duplicate_of
                )
                continue
            chunk.add(
                id=key,
                text=row.text,
                source=src.name,
                split=src.split,
                meta=meta_json(row.meta),
                gold=row.gold,
                entity_types=row.entity_types,
                relation_types=row.relation_types,
            )
            tally["rows_out"] += 1
            if len(chunk) >= CHUNK_ROWS:
                yield chunk.table()
                yielded = True
                chunk = _Columns(MAIN_SCHEMA)
        per_source[src.name] = {
            "rows_in": tally["rows_in"],
            "rows_out": tally["rows_out"],
            "quarantined": sum(reasons.values()),
            "reasons": dict(sorted(reasons.items())),
        }

    if len(chunk) or not yielded:  # an empty run still yields one table, for its schema
        yield chunk.table()

    side["quarantine"] = quarantine.table()
    all_reasons: Counter[str] = Counter()
    for stats in per_source.values():
        all_reasons.update(stats["reasons"])
    summary.update(
        rows_in=sum(s["rows_in"] for s in per_source.values()),
        rows_out=sum(s["rows_out"] for s in per_source.values()),
        quarantined=sum(s["quarantined"] for s in per_source.values()),
        reasons=dict(sorted(all_reasons.items())),
        per_source=per_source,
    )


def _check(
    row: Row, max_chars: int, seen: set[str], near: NearDuplicates | None, ids: dict[str, str]
) -> tuple[str | None, str | None, str]:
    """(reason to quarantine or None, id of the kept document it duplicates, its own id).

    Marks a kept document as seen (and its source id in `ids`), so the first of a set of
    duplicates wins."""
    if row.problem is not None:
        return row.problem, None, ""
    assert row.text is not None
    if len(row.text) > max_chars:  # before normalising: a huge text costs nothing more
        return TOO_LONG, None, ""
    norm = normalise(row.text)
    if not norm:  # only characters that normalise away: nothing to learn from
        return EMPTY_TEXT, None, ""
    key = _digest(norm)
    if key in seen:
        return EXACT_DUPLICATE, key, key
    source_id = _source_id(row)
    if source_id is not None and source_id in ids:
        return DUPLICATE_ID, ids[source_id], key
    if near is not None:
        original = near.find_or_add(key, norm)
        if original is not None:
            return NEAR_DUPLICATE, original, key
    seen.add(key)
    if source_id is not None:
        ids[source_id] = key
    return None, None, key


def _source_id(row: Row) -> str | None:
    """The source's own id of a row as a comparable string; None when it has none (a
    missing or NaN id names nothing)."""
    value = strict_json(row.meta.get("id"))
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class NearDuplicates:
    """An index of kept documents that answers "is this one nearly a kept one?".

    LSH proposes candidates; each is confirmed by its MinHash Jaccard estimate, so the
    configured threshold is what decides, not LSH's banding approximation. Signatures
    are kept in one growing array (num_perm small ints a document) rather than as MinHash
    objects, which keeps 200k documents at tens of megabytes.
    """

    def __init__(self, threshold: float, num_perm: int, shingle_words: int):
        # Imported here: datasketch pulls in scipy (seconds), needed only when deduplicating.
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.shingle_words = shingle_words
        try:
            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        except ValueError:
            # Very high thresholds make datasketch pick a single band, which it refuses.
            # Two bands only add candidates, and every candidate is confirmed below.
            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(2, num_perm // 2))
        # Permutations are drawn once here; copies share them, so hashing stays cheap.
        # crc32 is C code called directly (datasketch's default sha1 wrapper is a Python
        # function per shingle, most of the cost at 200k documents) and, unlike hash(),
        # the same in every process; MinHash mixes its output before permuting anyway.
        self._template = MinHash(num_perm=num_perm, hashfunc=zlib.crc32)
        self._ids: list[str] = []
        self._signatures = np.empty((1_024, num_perm), dtype=self._template.hashvalues.dtype)

    def find_or_add(self, doc_id: str, normalised: str) -> str | None:
        """The id of the earliest kept near-duplicate, or None after adding this one."""
        minhash = self._template.copy()
        minhash.update_batch(shingles(normalised, self.shingle_words))
        signature = minhash.hashvalues
        candidates = self.lsh.query(minhash)
        if candidates:
            ordinals = np.array(sorted(candidates))
            similarity = (self._signatures[ordinals] == signature).mean(axis=1)
            hits = ordinals[similarity >= self.threshold]
            if hits.size:
                return self._ids[int(hits[0])]
        ordinal = len(self._ids)
        if ordinal == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.empty_like(self._signatures)])
        self._signatures[ordinal] = signature
        self._ids.append(doc_id)
        self.lsh.insert(ordinal, minhash, check_duplication=False)
        return None


def shingles(normalised: str, k: int) -> list[bytes]:
    """Word k-grams of a normalised text; a text shorter than k words is one shingle."""
    words = normalised.split(" ")
    if len(words) <= k:
        return [normalised.encode("utf-8")]
    return [" ".join(words[i : i + k]).encode("utf-8") for i in range(len(words) - k + 1)]


class _Columns:
    """Rows gathered column by column, turned into a table of a fixed schema."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}

    def add(self, **values: Any) -> None:
        for name, column in self.columns.items():
            column.append(values[name])

    def __len__(self) -> int:
        return len(self.columns[self.schema.names[0]])

    def table(self) -> pa.Table:
        return pa.Table.from_pydict(self.columns, schema=self.schema)
