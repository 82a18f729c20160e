"""A stage that is not in t2g: tests/t2g/test_dag.py registers it in a test registry to show
that adding a stage takes one module (this one) plus one registry entry, no other edit."""

from __future__ import annotations

import pyarrow as pa

from t2g.stage import StageResult


def word_counts(cfg: dict, docs: pa.Table) -> StageResult:
    words = [len(text.split()) for text in docs.column("text").to_pylist()]
    table = pa.table({"id": docs.column("id"), "words": pa.array(words, pa.int64())})
    return StageResult(main=table, summary={"rows_in": docs.num_rows, "rows_out": docs.num_rows, "words": sum(words)})


def word_report(summary: dict, node, kind: str) -> dict[str, list[str]]:
    """Its report hook (t2g.reporting): tests/flows/test_report_hooks.py shows it reaches both
    reports with no edit in flows/."""
    if "words" not in summary:
        return {}
    if kind == "markdown":
        return {"data": ["", "### Words", "", f"{summary['words']} words in {node.name}"]}
    return {"data": [f"{node.name}: {summary['words']} words ({node.uri})"]}
