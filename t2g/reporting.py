"""What a stage says about its own output in a run's reports: the `report` hook of its
registry entry (t2g.stages.Stage), `report(summary, node, kind) -> {part: lines}`.

Two reports read the hooks; `kind` says which:
- "markdown": the run report (the `t2g-run-report` artifact, flows.report.render);
- "text": what `t2g run` prints at the end of a run that evaluated (flows.report.closing_report).

A hook gets its node's summary (the manifest's, {} when it could not be read) and a view
of the node (`ReportNode`: its name and round, its artifact's URI, its inputs' summaries,
its files), and returns lines for some of the report's parts (PARTS). The flows lay the
parts out, each part's lines in run order, around what every stage has (the artifacts
table, drop reasons, LLM requests, plots); they know no stage.

Plain: no Prefect, no store (the node's files come through `ReportNode.read`). Stage
modules import this module only, so its helpers are part of their code version; what
reads the hooks lives in flows/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["markdown", "text"]

# The parts a hook may fill, in the order the reports show them:
# - counts:  rows kept and removed beyond the drop reasons (the filter's repairs);
# - data:    where the training data came from and how good it is (the teacher's labels);
# - rounds:  what a later round did (rejection sampling);
# - results: the evaluation; the closing text is printed only when a stage gave one;
# - links:   where a stage's files are, after the results (GRPO's reward plots).
PARTS = ("counts", "data", "rounds", "results", "links")


def _no_files(name: str) -> bytes:
    raise KeyError(f"{name}: this report reads no files")


@dataclass(frozen=True)
class ReportNode:
    name: str  # the node (`sample-2`)
    uri: str  # its artifact
    round: int = 1
    # The summaries of its inputs, by the stage function's parameter (the filter's `table`
    # is extract's): a stage may say something only when its input carries something.
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    read: Callable[[str], bytes] = _no_files  # one of its files (evaluate's report.md)


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> list[str]:
    """A markdown table of `rows` (columns: the first row's keys unless given)."""
    if not rows:
        return []
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return lines


class ReportHookError(ValueError):
    """A hook answered something no report can show: a bug in the hook, never left out."""


def checked(parts: Mapping[str, list[str]], who: str) -> dict[str, list[str]]:
    """A hook's answer, refused when it names a part no report has (a typo would vanish)."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not all(
        isinstance(lines, list) and all(isinstance(x, str) for x in lines) for lines in parts.values()
    ):
        raise ReportHookError(
            f"{who}'s report hook must return {{part: [lines]}} with parts among {list(PARTS)}; got {sorted(parts)}"
        )
    return {part: list(lines) for part, lines in parts.items()}
