"""Corpus: the documents a graph is built from, read, checked and deduplicated exactly as
collect does (t2g.stages.collect), under a section and an artifact of their own. A
training recipe that appends a graph keeps its own collect untouched, so its teacher,
student and every other artifact stay cache hits while the corpus changes.

It also reads one source kind collect does not: `identities`, the toy world with
identities (t2g.kg.identities). Its reader is registered here rather than in t2g.sources,
which is part of collect's code version: a new kind there would change every key."""

from __future__ import annotations

from collections.abc import Iterator

from t2g.graph import graph_from_obj
from t2g.kg.config import CorpusConfig, IdentitiesSource
from t2g.kg.identities import World, documents
from t2g.sources import READERS
from t2g.sources.base import Row
from t2g.stage import StageResult
from t2g.stages.collect import collect


def read_identities(src: IdentitiesSource, max_chars: int | None = None) -> Iterator[Row]:
    # Generated text: max_chars bounds what a file source reads, there is no file here.
    world = World(seed=src.world_seed, long_every=src.long_every)
    for index, doc in enumerate(documents(src.n, src.seed, world)):
        entities = list(dict.fromkeys((m["text"], m["type"]) for m in doc["mentions"]))
        relations = list(dict.fromkeys((f["head_text"], f["tail_text"], f["type"]) for f in doc["facts"]))
        gold = graph_from_obj({"entities": [{"text": t, "type": ty} for t, ty in entities],
                               "relations": [{"head": h, "tail": t, "type": ty} for h, t, ty in relations]})  # fmt: skip
        yield Row(source=src.name, row=index, text=doc["text"], meta={"id": doc["id"], "seed": src.seed, "index": index},
                  gold=gold.to_json())  # fmt: skip


READERS.setdefault(IdentitiesSource, read_identities)


def corpus(cfg: CorpusConfig) -> StageResult:
    return collect(cfg)
