"""The stages' plots: a figure drawn without a display and handed back as PNG bytes (the
artifact's file, and the UI's image)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def png_figure(out: list[bytes]) -> Iterator[tuple[Any, Any]]:
    """`with png_figure(out) as (fig, ax): ...` draws on a 7x4-inch figure; on leaving, its
    PNG is appended to `out` and the figure closed (matplotlib keeps every open one)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to bytes
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        yield fig, ax
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        out.append(buf.getvalue())
    finally:
        plt.close(fig)
