"""bench/suite.py reads pytest's closing line: the counts and seconds of any such line, the
last one when there are several, nothing from output without one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.suite import summary

WORDS = ["failed", "passed", "skipped", "xfailed", "warnings", "errors"]


@given(
    counts=st.dictionaries(st.sampled_from(WORDS), st.integers(0, 100_000), min_size=1),
    seconds=st.floats(0, 1e5, allow_nan=False).map(lambda s: round(s, 2)),
    noise=st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=40),
)
def test_the_closing_line_s_counts_and_seconds_come_back(counts, seconds, noise):
    line = ", ".join(f"{n} {w}" for w, n in counts.items()) + f" in {seconds:.2f}s (0:00:00)"
    out = f"{noise}\n........ [100%]\n==== 1 passed in 0.10s ====\n{line}\n"
    assert summary(out) == {"counts": counts, "pytest_s": round(seconds, 2)}


def test_output_without_a_summary_gives_nothing():
    assert summary("ERROR: file or directory not found: tests/x.py\n") == {}
    assert summary("") == {}
