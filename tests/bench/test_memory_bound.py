"""Bounded memory (RELIABILITY.md promise 7): collect → extract(gold) → filter stays under
2 GB peak RSS at 200,000 documents. The full size is a soak (`-m slow`, 75 s to 9 minutes with load); the
fast test runs bench/load.py's child at 2,000 and 20,000 documents and holds the growth
between them to the promise scaled down.

How the bound is chosen: peak RSS = a fixed part (Python, pyarrow, the stage code: ~490 MB
at 2,000 documents) + a part that grows with the documents. The promise leaves
`LIMIT_MB - fixed` for 200,000 documents; linear in the documents, that allows
(LIMIT_MB - fixed) × 18,000 / 198,000 MB (~140 MB) of growth from 2,000 to 20,000. Measured:
~108 MB (494 → 602 MB), and from 20,000 to 200,000 the growth per document is about half
that (1,209 and 1,336 MB at 200,000 in bench/results.json's last two runs),
so linear scaling is the pessimistic reading. A change whose
per-document memory would break 2 GB at 200,000 — a second copy of the table as Python
rows, say — fails here in seconds."""

from __future__ import annotations

import pytest

from bench import load

SMALL, LARGE, FULL = 2_000, 20_000, 200_000


def allowed_growth_mb(fixed_mb: float, small: int, large: int) -> float:
    """The promise's per-document budget, (LIMIT_MB - fixed) / FULL-small, over large-small."""
    return (load.LIMIT_MB - fixed_mb) * (large - small) / (FULL - small)


def test_memory_grows_within_the_promise_scaled_to_20000_documents():
    small, large = load.run(n_docs=SMALL), load.run(n_docs=LARGE)
    assert all(s["rows"] > 0 for s in large["stages"].values()), large
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    bound = allowed_growth_mb(small["peak_rss_mb"], SMALL, LARGE)
    print(
        f"peak RSS {small['peak_rss_mb']} MB at {SMALL}, {large['peak_rss_mb']} MB at {LARGE}: growth {growth:.0f} MB, bound {bound:.0f} MB"
    )
    assert growth <= bound, (
        f"peak RSS grew {growth:.0f} MB from {SMALL} to {LARGE} documents ({small['peak_rss_mb']} → {large['peak_rss_mb']} MB); "
        f"at that rate {FULL} documents would pass {load.LIMIT_MB} MB (allowed growth {bound:.0f} MB). Stages: {large['stages']}"
    )


@pytest.mark.slow
def test_memory_stays_under_2_gb_at_200000_documents():
    figures = load.run(n_docs=FULL)
    print(f"peak RSS {figures['peak_rss_mb']} MB at {FULL} documents: {figures['stages']}")
    assert figures["peak_rss_mb"] < load.LIMIT_MB, figures
