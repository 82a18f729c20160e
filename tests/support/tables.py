"""The rows the store tests write: one shape for all of them."""

from __future__ import annotations

import pyarrow as pa


def numbered_table(n: int, offset: int = 0) -> pa.Table:
    """Rows d{offset}… d{offset + n - 1}: a string id, a text, a list column with nulls at
    both depths (what a content digest must tell apart) and x, the row's number."""
    rows = range(offset, offset + n)
    return pa.table(
        {
            "id": [f"d{i}" for i in rows],
            "text": [f"text number {i}" for i in rows],
            "tags": [[f"t{i}", None] if i % 3 else None for i in rows],
            "x": list(rows),
        }
    )
