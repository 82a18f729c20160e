"""The counts a stage reports, as a table that adds up on its own.

A row-wise stage (collect, extract, filter, reason) turns input rows into output rows:
every input row is either out, or counted under a named reason (dropped, quarantined, not
selected), and added rows (filter's augmentation variants) are shown as variants. So
`rows in - each reason + variants = rows out`, and `balance` says by how much a summary
misses that. Rows a stage repaired instead of dropping (filter with `ungrounded: repair`)
are output rows: they are shown after rows out, as part of it, and take no part in the
sum; what the repair removed is in the `repaired` side artifact. Training and evaluation stages write logs and predictions, not rows derived
one for one: their table names what went in and what came out, and claims no sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOT_SELECTED = "not selected (split not labelled)"


def reasons(summary: Mapping[str, Any]) -> dict[str, int]:
    """Every named reason an input row did not become an output row."""
    out = {f"dropped: {why}": int(n) for why, n in sorted((summary.get("reasons") or {}).items())}
    if summary.get("not_selected"):
        out[NOT_SELECTED] = int(summary["not_selected"])
    return out


def repaired(summary: Mapping[str, Any]) -> dict[str, int]:
    """Output rows the stage kept after repairing them, by what was repaired."""
    return {
        f"repaired (kept, in rows out): {why}": int(n) for why, n in sorted((summary.get("repaired") or {}).items())
    }


# Side artifacts that describe rows that are in rows out (the others hold rows kept aside).
ABOUT_ROWS_OUT = {"repaired": "what repair removed from rows that are in rows out"}


def balance(summary: Mapping[str, Any], rows_out: int) -> int:
    """0 when the summary accounts for every row; else the rows it misses (or invents)."""
    rows_in = int(summary.get("rows_in", 0))
    return rows_in - sum(reasons(summary).values()) + int(summary.get("variants", 0) or 0) - rows_out


def table(summary: Mapping[str, Any], rows_out: int, side: Mapping[str, int], row_wise: bool) -> list[dict[str, Any]]:
    """The counts artifact's rows: what, count."""
    if not row_wise:
        rows = [{"what": "input rows", "count": summary.get("rows_in", "")}]
        if "examples" in summary:
            rows.append({"what": "examples used", "count": summary["examples"]})
        rows.append({"what": "output rows (log or predictions)", "count": rows_out})
        return rows + [{"what": f"{name} artifact rows", "count": n} for name, n in side.items()]
    rows = [{"what": "rows in", "count": int(summary.get("rows_in", 0))}]
    rows += [{"what": why, "count": -n} for why, n in reasons(summary).items()]
    if summary.get("variants"):
        rows.append({"what": "augmentation variants added", "count": int(summary["variants"])})
    rows.append({"what": "rows out", "count": rows_out})
    gap = balance(summary, rows_out)
    if gap:  # never hide a count that does not add up: show it as its own row
        rows.append({"what": "unaccounted for", "count": gap})
    rows += [{"what": why, "count": n} for why, n in repaired(summary).items()]
    rows += [{"what": f"{name} artifact rows ({ABOUT_ROWS_OUT.get(name, 'kept aside, not in rows out')})", "count": n}
             for name, n in side.items()]  # fmt: skip
    return rows
