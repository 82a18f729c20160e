"""Chunk: cut each corpus document into token-aware windows with overlap (t2g.kg.chunking),
each keeping its document id and character offsets, so everything extracted from a window
points back into its document."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from t2g.kg.chunking import chunk_table, words
from t2g.kg.config import ChunkConfig
from t2g.stage import StageResult


def counter(tokenizer: str | None) -> Callable[[str], int]:
    """How tokens are counted: a tokenizer's encoding length, or words."""
    if tokenizer is None:
        return words  # no model needed
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=False)  # a tokenizer never needs its repo's code
    return lambda text: len(tok.encode(text, add_special_tokens=False))


def corpus(docs: pa.Table, splits: list[str] | None) -> pa.Table:
    """The documents of `splits` (all when None), as the id/text table chunking takes."""
    if splits is not None and "split" in docs.column_names:
        docs = docs.filter(pc.is_in(docs.column("split"), value_set=pa.array(splits, pa.string())))
    return docs.select(["id", "text"])


def chunk(cfg: ChunkConfig, docs: pa.Table) -> StageResult:
    selected = corpus(docs, cfg.splits)
    chunks = chunk_table(selected, cfg.max_tokens, cfg.overlap_tokens, counter(cfg.tokenizer))
    summary = {
        "rows_in": docs.num_rows,
        "not_selected": docs.num_rows - selected.num_rows,
        "documents": selected.num_rows,
        "chunks": chunks.num_rows,
        "tokenizer": cfg.tokenizer or "words",
    }
    return StageResult(main=chunks, summary=summary)
