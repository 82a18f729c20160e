"""Where documents come from: one reader per source kind, one `Row` per raw record.

`read_source(src)` raises `SourceError` at call time when the source cannot be read at
all; after that, every record comes out as a Row, bad ones with `problem` set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

from t2g.config import AnnotatedSource, HFSource, JsonlSource, ParquetSource, Source, TextSource, ToyworldSource
from t2g.sources.annotated import read_annotated
from t2g.sources.base import Row, SourceError
from t2g.sources.files import DEFAULT_MAX_CHARS, read_jsonl, read_parquet, read_text
from t2g.sources.hf import read_hf
from t2g.sources.toyworld import read_toyworld

__all__ = ["Row", "SourceError", "read_source", "READERS"]

READERS: dict[type, Callable[..., Iterator[Row]]] = {
    JsonlSource: read_jsonl,
    ParquetSource: read_parquet,
    TextSource: read_text,
    HFSource: read_hf,
    AnnotatedSource: read_annotated,
    ToyworldSource: read_toyworld,
}


def read_source(src: Source, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Row]:
    """Rows of one configured source, at most `src.limit` of them (bad rows count).

    `max_chars` (collect's) bounds what is read: a folder's file too large to hold a
    document of that length is not read, a line far longer is not held whole."""
    reader = READERS.get(type(src))
    if reader is None:
        raise TypeError(f"no reader for source kind {type(src).__name__}")
    rows = reader(src, max_chars)
    return rows if src.limit is None else islice(rows, src.limit)
