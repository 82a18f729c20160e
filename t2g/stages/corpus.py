"""Corpus: the documents a graph is built from, read, checked and deduplicated exactly as
collect does (t2g.stages.collect), under a section and an artifact of their own. A
training recipe that appends a graph keeps its own collect untouched, so its teacher,
student and every other artifact stay cache hits while the corpus changes."""

from __future__ import annotations

from t2g.config import CollectConfig
from t2g.stage import StageResult
from t2g.stages.collect import collect


def corpus(cfg: CollectConfig) -> StageResult:
    return collect(cfg)
