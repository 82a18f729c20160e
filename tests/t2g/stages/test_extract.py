"""The extract stage: gold and LLM backends, the recipe's split selection, bad answers
kept with their error, and sharding (a rerun reuses every finished shard)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from t2g import shards
from t2g.config import CollectConfig, ExtractConfig
from t2g.llm import clear_cache
from t2g.runner import execute
from t2g.stages.collect import collect
from t2g.stages.extract import ExtractError, extract
from t2g.store import Store
from tests.support.fake_openai import FakeOpenAI


def _docs(n_pool: int = 12, n_test: int = 4) -> pa.Table:
    cfg = CollectConfig.model_validate(
        {
            "sources": [
                {"name": "pool", "kind": "toyworld", "split": "pool", "n": n_pool, "seed": 2},
                {"name": "test", "kind": "toyworld", "split": "test", "n": n_test, "seed": 3},
            ],
            "near_duplicate_threshold": None,
        }
    )
    result = collect(cfg)
    main = result.main if isinstance(result.main, pa.Table) else pa.concat_tables(list(result.main))
    return main


def test_gold_backend_with_split_selection():
    docs = _docs()
    res = extract(ExtractConfig(backend="gold", splits=["pool"]), docs)
    assert res.main.num_rows == 12 and set(res.main.column("split").to_pylist()) == {"pool"}
    assert res.summary["not_selected"] == 4 and res.summary["rows_in"] == 16
    assert all(e == "" for e in res.main.column("error").to_pylist())


def test_teacher_placeholder_needs_a_teacher():
    with pytest.raises(ExtractError, match="@teacher"):
        extract(ExtractConfig(backend="transformers", model="@teacher"), _docs(2, 0))


def test_transformers_backend_with_the_teacher_input(tiny_model_dir):
    docs = _docs(6, 2)
    cfg = ExtractConfig(backend="transformers", model="@teacher", splits=["pool"], max_new_tokens=96, device="cpu")
    res = extract(cfg, docs, tiny_model_dir)
    rows = res.main.to_pylist()
    assert len(rows) == 6 and res.summary["not_selected"] == 2
    for row in rows:
        assert row["model"] == "@teacher" and row["raw"] is not None and row["prompt_tokens"] > 0
        # Constrained decoding: a graph, or (cut at max_new_tokens) the reason there is none.
        assert (row["graph"] is not None) != bool(row["error"])
        if row["graph"] is not None:
            graph = json.loads(row["graph"])
            assert {e["type"] for e in graph["entities"]} <= set(row["entity_types"])


def test_openai_backend_keeps_bad_answers_with_their_error():
    docs = _docs(8, 0)
    ids = docs.column("id").to_pylist()
    texts = docs.column("text").to_pylist()

    # Tag each document's prompt with its index so the fake server can misbehave per document.
    tagged = docs.set_column(
        docs.schema.get_field_index("text"), "text", pa.array([f"[d{i}] {t}" for i, t in enumerate(texts)])
    )

    def answer(key: str, body: dict):
        if key == "d3":  # a server without constrained decoding answering a type nobody asked for
            return json.dumps({"entities": [{"id": 0, "text": "x", "type": "spaceship"}], "relations": []}), None
        return json.dumps({"entities": [], "relations": []}), None

    with FakeOpenAI({"d1": ["invalid"], "d2": ["400"], "d4": ["500", "429"]}, answer=answer) as fake:
        cfg = ExtractConfig(backend="openai", model="fake", base_url=fake.base_url, timeout_s=5, backoff_s=0.01)
        res = extract(cfg, tagged)
    clear_cache()
    rows = {r["id"]: r for r in res.main.to_pylist()}
    assert list(rows) == ids  # every document, once, in order
    assert rows[ids[1]]["error"].startswith("unparseable answer") and rows[ids[1]]["raw"].startswith(
        '{"entities": [ {"text": oops'
    )
    assert rows[ids[2]]["error"].startswith("generation failed: 400") and fake.attempts["d2"] == 1
    assert rows[ids[3]]["error"] == "types not requested: spaceship" and rows[ids[3]]["graph"] is None
    assert rows[ids[4]]["error"] == "" and fake.attempts["d4"] == 3
    assert res.summary["graphs"] == 5 and sum(res.summary["errors"].values()) == 3


def test_sharded_rerun_reuses_finished_shards(tmp_path, tiny_model_dir):
    store = Store(f"file://{tmp_path}/store")
    docs_ref = store.write("collect", "c0", _docs(10, 0))
    teacher_ref = store.write("teacher", "t0", pa.table({"x": [1]}))  # stands in for an upstream key only
    cfg = ExtractConfig(
        backend="transformers", model=str(tiny_model_dir), shard_size=4, max_new_tokens=64, device="cpu"
    )
    plan = shards.plan("extract", cfg, [docs_ref], store, cfg.shard_size)
    assert [s.rows for s in plan.shards] == [5, 5]  # digest ranges of at most 5 rows (t2g.shards.SPREAD x 4)
    # A "crash" after the first shard: only that one is finished.
    first = shards.run_shard("extract", cfg, plan.shards[0], [docs_ref], store)
    assert not first.hit
    outcomes = [shards.run_shard("extract", cfg, s, [docs_ref], store) for s in plan.shards]
    assert [o.hit for o in outcomes] == [True, False]
    merged = shards.merge("extract", cfg, [docs_ref], plan.shards, store)
    assert merged.ref.rows == 10 and merged.summary["rows_out"] == 10 and merged.summary["shards"] == 2
    # The merged artifact is the stage's own: the plain runner finds it as a cache hit.
    assert execute("extract", cfg, [docs_ref], store).hit
    assert (
        store.read("extract", merged.ref.key).column("id").to_pylist()
        == store.read("collect", "c0").column("id").to_pylist()
    )
    # Another input key (a different teacher) is another shard key.
    assert (
        shards.plan("extract", cfg, {"docs": docs_ref, "teacher": teacher_ref}, store, 4).shards[0].key
        != plan.shards[0].key
    )


def test_teacher_labels_are_scored_against_the_documents_gold():
    """The toy world's documents carry their gold: the summary scores the teacher's labels
    against it (counts, so shards add up), and label_quality turns them into P/R/F1."""
    from t2g.graph import graph_from_obj
    from t2g.stages.extract import against_gold, label_quality

    docs = _docs(6, 2)
    golds = [graph_from_obj(json.loads(g)) for g in docs.column("gold").to_pylist()]
    tagged = docs.set_column(
        docs.schema.get_field_index("text"),
        "text",
        pa.array([f"[d{i}] {t}" for i, t in enumerate(docs.column("text").to_pylist())]),
    )

    def answer(key: str, body: dict):  # the gold for even documents, nothing for odd ones
        i = int(key[1:])
        return (golds[i].to_json() if i % 2 == 0 else json.dumps({"entities": [], "relations": []})), None

    with FakeOpenAI({"d5": ["invalid"]}, answer=answer) as fake:  # d5: no graph at all, an empty answer
        cfg = ExtractConfig(backend="openai", model="fake", base_url=fake.base_url, timeout_s=5, backoff_s=0.01)
        res = extract(cfg, tagged)
    clear_cache()
    scored = res.summary["vs_gold"]
    assert {split: s["documents"] for split, s in scored.items()} == {"pool": 6, "test": 2}
    for kind, items in (("entities", "entities"), ("relations", "relations")):
        found = sum(len(getattr(golds[i], items)) for i in range(0, 8, 2))
        missed = sum(len(getattr(golds[i], items)) for i in range(1, 8, 2))
        total = {k: scored["pool"][kind][k] + scored["test"][kind][k] for k in ("tp", "fp", "fn")}
        assert total == {"tp": found, "fp": 0, "fn": missed}
    rows = {r["split"]: r for r in label_quality(res.summary)}
    assert rows["pool"]["entity precision"] == 1.0 and 0 < rows["pool"]["entity recall"] < 1
    # Counts, not ratios: the halves of a sharded run add up to the whole.
    out = res.main.to_pylist()
    halves = shards.merge_summaries([{"vs_gold": against_gold(out[:3])}, {"vs_gold": against_gold(out[3:])}])
    assert halves["vs_gold"] == scored
    assert against_gold([{**r, "gold": None} for r in out]) == {} and label_quality({}) == []
