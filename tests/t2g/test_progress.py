"""Long phases say how far they are (t2g/progress.py): about ten lines each."""

from __future__ import annotations

import logging

from t2g.progress import Progress


def test_a_phase_reports_every_tenth_and_its_end(caplog):
    caplog.set_level(logging.INFO, logger="t2g.progress")
    progress = Progress("copy warm-up", 1200)
    for step in range(1, 1201):
        progress.step(step, loss=1.0 / step)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and lines[0].startswith("copy warm-up: step 120/1200 (10%), loss")
    assert lines[-1].startswith("copy warm-up: step 1200/1200 (100%)")


def test_a_short_phase_reports_each_step():
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("t2g.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        progress = Progress("sft training", 3)
        for step in (1, 2, 3):
            progress.step(step)
    finally:
        logger.removeHandler(handler)
    assert [s.split(",")[0] for s in seen] == [
        "sft training: step 1/3 (33%)",
        "sft training: step 2/3 (66%)",
        "sft training: step 3/3 (100%)",
    ]
