"""`t2g graph --model … --input …`: a corpus graph in one process, no recipe, no store:
the same functions the graph stages run (chunk → graph-extract → resolve → export), on a
model folder, a store artifact or a served model, writing the tables and exports into one
folder:

    OUT/nodes.parquet  edges.parquet  mentions.parquet  merges.parquet  evidence.parquet
    OUT/graph.graphml  OUT/neo4j/  OUT/graph.html  (OUT/graph.kuzu with "embedded")

Answers are cached per request under OUT/_llm_cache (t2g.llm.cache), so building again
after adding documents asks the model only about the new chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from t2g.kg.chunking import chunk_table
from t2g.kg.config import ChunkConfig, GraphConfig, ResolveConfig
from t2g.kg.inputs import InputError, batches, documents
from t2g.kg.resolve import resolve as resolve_graph
from t2g.llm.cache import open_cache, use_cache
from t2g.stages.chunk import counter
from t2g.stages.export import write_exports
from t2g.stages.graph_extract import graph_extract

DOC_BATCH = 2_000  # documents chunked at once


@dataclass
class Built:
    out: Path
    documents: int
    chunks: int
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def read_chunks(path: Path, chunk: ChunkConfig) -> tuple[pa.Table, int]:
    """CHUNKS of every document of the input (streamed in batches), and the document count.
    A document id seen twice is an InputError: chunk and mention ids are built from it."""
    count = counter(chunk.tokenizer)
    seen: set[str] = set()
    parts = []
    for batch in batches(documents(path), DOC_BATCH):
        ids = [str(r["id"]) for r in batch]
        for doc_id in ids:
            if doc_id in seen:
                raise InputError(f"--input {path}: document id {doc_id!r} appears twice: ids must be unique")
            seen.add(doc_id)
        docs = pa.table({"id": pa.array(ids, pa.string()), "text": pa.array([r["text"] for r in batch], pa.string())})
        parts.append(chunk_table(docs, chunk.max_tokens, chunk.overlap_tokens, count))
    return pa.concat_tables(parts), len(seen)


def build_graph(
    path: Path,
    out: Path,
    graph: GraphConfig,
    chunk: ChunkConfig,
    resolve: ResolveConfig,
    formats: list[str],
    *,
    api_key: str | None = None,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
) -> Built:
    """The whole graph of `path` into `out`. `progress(total, ...)` returns the callback
    told of every chunk answered (the command's progress bar)."""
    chunks, n_docs = read_chunks(path, chunk)
    out.mkdir(parents=True, exist_ok=True)
    tick = progress(chunks.num_rows) if progress is not None else None
    with use_cache(open_cache(out.resolve().as_uri())):
        extracted = graph_extract(graph, chunks, api_key=api_key, progress=tick)
    g = resolve_graph(
        extracted.main, extracted.side["relations"], fuzzy_threshold=resolve.fuzzy_threshold, chunks=chunks
    )
    files = []
    for name, table in (
        ("nodes", g.nodes),
        ("edges", g.edges),
        ("mentions", g.mentions),
        ("merges", g.merges),
        ("evidence", g.evidence),
    ):
        pq.write_table(table, out / f"{name}.parquet")
        files.append(out / f"{name}.parquet")
    for paths in write_exports(formats, g.nodes, g.edges, g.mentions, g.evidence, out).values():
        files += paths
    summary = {**extracted.summary, "nodes": g.nodes.num_rows, "edges": g.edges.num_rows}
    return Built(out, n_docs, chunks.num_rows, summary, files)
