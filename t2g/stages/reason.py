"""Reasoning: the SFT target for each kept example.

With thinking on, an R1 reasoner writes how it would reach the graph from the text
(built with the reasoner backends); with thinking off, the target is the graph JSON
alone and the summary says so, so nobody mistakes a no-thinking run for an R1 one.
"""

from __future__ import annotations

import pyarrow as pa

from t2g.config import ReasonConfig
from t2g.stage import StageResult

OUTPUT_FIELDS = [pa.field("think", pa.string()), pa.field("target", pa.string())]


def reason(cfg: ReasonConfig, examples: pa.Table) -> StageResult:
    if cfg.thinking:
        raise NotImplementedError(
            "reason.thinking=true needs the reasoner LLM backends, not implemented in this build; "
            "set reason.thinking=false"
        )
    n = examples.num_rows
    table = examples.append_column(OUTPUT_FIELDS[0], pa.nulls(n, pa.string()))
    table = table.append_column(OUTPUT_FIELDS[1], examples.column("graph"))
    note = "thinking disabled in the recipe: targets are the graph JSON without <think> reasoning"
    return StageResult(main=table, summary={"rows_in": n, "rows_out": n, "note": note})
