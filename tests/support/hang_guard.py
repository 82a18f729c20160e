"""A guard against hangs, not a speed check: code that should finish in well under a second
fails the test after `seconds` (default 120) instead of stalling the suite. Speed is
measured by `make bench`, never asserted by tests (a loaded machine would make them flaky)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hang_guard(seconds: int = 120) -> Iterator[None]:
    def hung(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang (e.g. quadratic work), not slowness")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
