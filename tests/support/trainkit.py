"""Small, fast inputs for the training-stage tests: reason-shaped tables from the toy
world, the smallest tiny model settings that still train, and the SFT settings they share."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from t2g import tiny, toyworld
from t2g.config import SftConfig, TinyModelConfig
from t2g.graph import Graph
from t2g.training import BASE_FILE

# ~50k parameters: a step takes a fraction of a second on a loaded CPU.
SMALL_TINY = TinyModelConfig(vocab_size=400, hidden_size=32, layers=1, heads=1)


def reason_table(n: int, seed: int = 5) -> pa.Table:
    rows = []
    for doc in toyworld.generate(n, seed=seed):
        graph = Graph.model_validate({"entities": doc["entities"], "relations": doc["relations"]}).to_json()
        rows.append({"id": doc["id"], "text": doc["text"], "entity_types": doc["entity_types"],
                     "relation_types": doc["relation_types"], "graph": graph, "think": None, "target": graph})  # fmt: skip
    return pa.Table.from_pylist(rows)


def collect_table(splits: dict[str, int]) -> pa.Table:
    rows = []
    for split, n in splits.items():
        for doc in toyworld.generate(n, seed=7, split="test" if split == "test" else "train"):
            gold = json.dumps({"entities": doc["entities"], "relations": doc["relations"]})
            rows.append({"id": f"{split}-{doc['id']}", "text": doc["text"], "source": split, "split": split, "meta": "{}",
                         "gold": gold, "entity_types": doc["entity_types"], "relation_types": doc["relation_types"]})  # fmt: skip
    return pa.Table.from_pylist(rows)


def sft_config(work: Path, **kw) -> SftConfig:
    """The SFT settings of the training tests: 3 steps of 4 examples on SMALL_TINY, no
    checkpoint unless a test asks (save_steps 100), a log line every step; kw override."""
    base = dict(max_steps=3, batch_size=4, learning_rate=3e-3, save_steps=100, logging_steps=1,
                tiny=SMALL_TINY, work_dir=str(work))  # fmt: skip
    return SftConfig(**{**base, **kw})


def small_tiny_model(out: Path, prompt_tokens: bool = True) -> Path:
    """An untrained small tiny model saved the way the sft stage saves one."""
    tiny.build_tiny(out, toyworld.corpus(200, seed=0), vocab_size=SMALL_TINY.vocab_size, prompt_tokens=prompt_tokens,
                    hidden_size=SMALL_TINY.hidden_size, layers=SMALL_TINY.layers, heads=SMALL_TINY.heads)  # fmt: skip
    (out / BASE_FILE).write_text(json.dumps({"model": "tiny", "tiny": SMALL_TINY.model_dump()}))
    return out
