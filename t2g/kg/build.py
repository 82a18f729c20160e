"""`t2g graph --model … --input …`: a corpus graph in one process, no recipe, no store:
the same functions the graph stages run (chunk → graph-extract → resolve → export), on a
model folder, a store artifact or a served model, writing the tables and exports into one
folder:

    OUT/nodes.parquet  edges.parquet  mentions.parquet  merges.parquet  evidence.parquet
    OUT/graph.graphml  OUT/neo4j/  OUT/graph.html  (OUT/graph.kuzu with "embedded")
    OUT/quarantine.jsonl  the documents left out (not UTF-8, not JSON, empty, id twice), why

Answers are cached per request under OUT/_llm_cache (t2g.llm.cache), so building again
after adding documents asks the model only about the new chunks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from t2g.kg.chunking import chunk_table
from t2g.kg.config import ChunkConfig, GraphConfig, ResolveConfig
from t2g.kg.inputs import Quarantined, batches, documents
from t2g.kg.resolve import resolve as resolve_graph
from t2g.llm.cache import open_cache, use_cache
from t2g.stages.chunk import counter
from t2g.stages.export import write_exports
from t2g.stages.graph_extract import graph_extract

DOC_BATCH = 2_000  # documents chunked at once
QUARANTINE = "quarantine.jsonl"


@dataclass
class Built:
    out: Path
    documents: int
    chunks: int
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def read_chunks(path: Path, chunk: ChunkConfig, bad: list[Quarantined]) -> tuple[pa.Table, int]:
    """CHUNKS of every good document of the input (streamed in batches), and their count.
    Bad documents go to `bad`, and so does a second document with an id already seen: chunk
    and mention ids are built from it."""
    count = counter(chunk.tokenizer)
    seen: set[str] = set()
    parts = []
    for batch in batches(documents(path, bad=bad), DOC_BATCH):
        ids, texts = [], []
        for row in batch:
            doc_id = str(row["id"])
            if doc_id in seen:
                raw = json.dumps({"id": row["id"], "text": row["text"]}, ensure_ascii=False, default=str)
                bad.append(
                    Quarantined(f"--input {path} id {doc_id!r}", "the id appears twice: ids must be unique", raw)
                )
                continue
            seen.add(doc_id)
            ids.append(doc_id)
            texts.append(row["text"])
        docs = pa.table({"id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.string())})
        parts.append(chunk_table(docs, chunk.max_tokens, chunk.overlap_tokens, count))
    return pa.concat_tables(parts), len(seen)


def write_quarantine(out: Path, bad: list[Quarantined]) -> Path | None:
    """OUT/quarantine.jsonl: one line per document left out (where, reason, raw), if any."""
    path = out / QUARANTINE
    path.unlink(missing_ok=True)  # a rebuild must not show the last build's bad rows
    if not bad:
        return None
    with open(path, "w", encoding="utf-8") as fh:
        for row in bad:
            fh.write(json.dumps({"where": row.where, "reason": row.reason, "raw": row.raw}, ensure_ascii=False) + "\n")
    return path


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
    bad: list[Quarantined] = []
    chunks, n_docs = read_chunks(path, chunk, bad)
    out.mkdir(parents=True, exist_ok=True)
    quarantine = write_quarantine(out, bad)
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
    if quarantine is not None:
        summary["quarantined"] = dict(Counter(row.reason.split(" (")[0] for row in bad))
        files.append(quarantine)
    return Built(out, n_docs, chunks.num_rows, summary, files)
