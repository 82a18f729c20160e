"""Export: the resolved graph as files a graph tool opens, written into the artifact
(StageResult.files): GraphML (networkx; reloads with the same counts and attributes), the
CSV files `neo4j-admin database import` reads (with `import.sh`, the command that loads them),
a self-contained HTML viewer that opens offline, and an embedded graph database queried
with Cypher. Artifact file names are flat, so the Neo4j folder's files are `neo4j-<name>`
(`t2g graph` writes them back into OUT/neo4j/).

main: one row per written file (format, file, bytes). `report.md` (t2g.kg.summary: nodes and
edges by type, merges by rule, dropped mentions by reason, the most connected entities)
becomes the run's Prefect artifact `t2g-export-report` (tasks.stage_task.publish_outputs).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa

from t2g.kg.config import ExportConfig
from t2g.stage import StageResult

FILES = pa.schema([("format", pa.string()), ("file", pa.string()), ("bytes", pa.int64())])


def write_exports(
    formats: list[str], nodes: pa.Table, edges: pa.Table, mentions: pa.Table, evidence: pa.Table, out: Path
) -> dict[str, list[Path]]:
    """Write each format under `out` (graph.graphml, neo4j/, graph.html, graph.kuzu):
    {format: the files written}. The command line and the stage share it."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    if "graphml" in formats:
        from t2g.kg.graphml import write_graphml

        write_graphml(nodes, edges, out / "graph.graphml")
        written["graphml"] = [out / "graph.graphml"]
    if "neo4j" in formats:
        from t2g.kg.neo4j import write_neo4j_csv

        folder = out / "neo4j"
        write_neo4j_csv(nodes, edges, folder)  # with import.sh: the neo4j-admin command that loads it
        written["neo4j"] = sorted(p for p in folder.rglob("*") if p.is_file())
    if "html" in formats:
        from t2g.kg.viewer import render_html

        (out / "graph.html").write_text(render_html(nodes, edges, mentions, evidence), encoding="utf-8")
        written["html"] = [out / "graph.html"]
    if "embedded" in formats:
        from t2g.kg.embedded import load_embedded

        db = out / "graph.kuzu"
        load_embedded(nodes, edges, db)
        written["embedded"] = sorted(p for p in db.rglob("*") if p.is_file()) if db.is_dir() else [db]
    return written


def export(
    cfg: ExportConfig, nodes: pa.Table, edges: pa.Table, mentions: pa.Table, evidence: pa.Table,
    merges: pa.Table | None = None, dropped: pa.Table | None = None,
) -> StageResult:  # fmt: skip
    from t2g.kg.summary import graph_summary
    from t2g.kg.tables import MERGES

    files: dict[str, bytes] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="t2g-export-") as tmp:
        root = Path(tmp)
        for fmt, paths in write_exports(list(cfg.formats), nodes, edges, mentions, evidence, root).items():
            for path in paths:
                name = "-".join(path.relative_to(root).parts)  # neo4j/nodes.csv -> neo4j-nodes.csv
                files[name] = path.read_bytes()
                rows.append({"format": fmt, "file": name, "bytes": len(files[name])})
    counts: dict[str, int] = {}
    if dropped is not None:
        for reason, n in zip(dropped.column("reason").to_pylist(), dropped.column("count").to_pylist()):
            counts[reason] = counts.get(reason, 0) + int(n)
    files["report.md"] = graph_summary(
        nodes, edges, merges if merges is not None else MERGES.empty_table(), counts
    ).encode()
    summary = {"nodes": nodes.num_rows, "edges": edges.num_rows, "mentions": mentions.num_rows, "files": len(files)}
    return StageResult(main=pa.Table.from_pylist(rows, schema=FILES), summary=summary, files=files)
