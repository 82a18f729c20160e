"""Progress of long phases (a model's copy warm-up, training steps) on the `t2g.progress`
logger, about ten lines per phase: the orchestration forwards it to the run's log, so the
terminal and the UI show a first `make demo` working rather than hung."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("t2g.progress")


class Progress:
    """Logs `what: step k/total (p%), <figures>, <elapsed>` at every tenth of the way."""

    def __init__(self, what: str, total: int, parts: int = 10):
        self.what, self.total = what, max(int(total), 1)
        self.every = max(1, self.total // parts)
        self.started = time.monotonic()

    def step(self, done: int, **figures: Any) -> None:
        if done % self.every and done != self.total:
            return
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
        log.info("%s: step %d/%d (%d%%)%s, %.0f s", self.what, done, self.total, 100 * done // self.total,
                 f", {shown}" if shown else "", time.monotonic() - self.started)  # fmt: skip


def trainer_callback(what: str):
    """A transformers TrainerCallback that reports training steps through Progress."""
    from transformers import TrainerCallback

    class _Report(TrainerCallback):
        progress: Progress | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.progress = Progress(what, state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.progress is not None and logs:
                figures = {
                    k: v
                    for k, v in logs.items()
                    if k in ("loss", "reward", "learning_rate") and isinstance(v, (int, float))
                }
                self.progress.step(state.global_step, **figures)

    return _Report()
