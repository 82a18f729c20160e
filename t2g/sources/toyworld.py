"""The synthetic toy world (t2g.toyworld): generated documents with exact gold graphs."""

from __future__ import annotations

from collections.abc import Iterator

from t2g.config import ToyworldSource
from t2g.sources.annotated import interchange_row
from t2g.sources.base import Row


def read_toyworld(src: ToyworldSource, max_chars: int | None = None) -> Iterator[Row]:
    from t2g import toyworld

    # A split tag the toy world knows ("train", "validation", "test") also selects its
    # slice of the text space, so a test source can never repeat a training text; any
    # other tag (seed, pool, ...) is training data and draws from the training slice.
    split = src.split if src.split in toyworld.SPLITS else "train"
    world = toyworld.World(max_facts=src.max_facts, distractor_rate=src.distractor_rate)
    docs = toyworld.iter_documents(src.n, src.seed, world=world, split=split)

    def rows() -> Iterator[Row]:
        for index, doc in enumerate(docs):
            meta = {"id": doc.get("id"), "seed": src.seed, "index": index}
            yield interchange_row(src.name, index, doc, meta)

    return rows()
