"""Shards cut by content survive insertion: documents inserted into (or edited in) a grown
corpus change only the shards they fall in, and the merged artifact is the unsharded
stage's, rows in the same order."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g import runner, shards, toyworld
from t2g.config import AnnotatedSource, CollectConfig, ExtractConfig, FilterConfig
from t2g.store import Store


def _table(ids: list[str], texts: dict[str, str] | None = None) -> pa.Table:
    texts = texts or {}
    return pa.table({"id": ids, "text": [texts.get(i, f"text of {i}") for i in ids]})


def _digests(table: pa.Table, size: int) -> dict[str, pa.Table]:
    return {shards.digest(part): part for part in shards.split(table, size)}


def test_inserted_and_edited_documents_change_only_the_shards_they_fall_in():
    rng = random.Random(7)
    ids = [f"doc-{i}" for i in range(2000)]
    grown = list(ids)
    inserted = [f"new-{i}" for i in range(len(ids) // 10)]
    for new in inserted:
        grown.insert(rng.randrange(len(grown) + 1), new)
    edited = set(rng.sample(ids, len(ids) // 20))
    before = _digests(_table(ids), 16)
    parts = shards.split(_table(grown, {i: f"edited {i}" for i in edited}), 16)

    affected = set(inserted) | edited
    holds = [bool(affected & set(part.column("id").to_pylist())) for part in parts]
    changed = [n for n, part in enumerate(parts) if shards.digest(part) not in before]
    # Every shard that is not reused holds a new or edited document, or is next to one that
    # does (a new document that tips a range over the limit halves it: its other half)...
    assert all(holds[n] or any(holds[max(n - 1, 0) : n + 2]) for n in changed)
    # ...and fewer shards changed than documents did.
    assert len(changed) <= len(affected)
    reused = len(parts) - len(changed)
    print(f"{len(affected)} documents inserted or edited: {len(changed)} of {len(parts)} shards new, {reused} reused")

    # One document inserted near the start: by position every shard would shift.
    one = _digests(_table(["inserted"] + ids), 16)
    assert len(set(one) - set(before)) <= 2


def test_a_group_is_never_split_and_no_shard_is_much_larger_than_the_rest():
    ids = [f"d{i // 3}" for i in range(3000)]  # three rows per document (a document and its variants)
    parts = shards.split(pa.table({"doc_id": ids, "id": [f"{d}~{i}" for i, d in enumerate(ids)]}), 30)
    homes: dict[str, int] = {}
    for n, part in enumerate(parts):
        for d in part.column("doc_id").to_pylist():
            assert homes.setdefault(d, n) == n
    sizes = [p.num_rows for p in parts]
    # A stage waits on its largest shard: none holds more than SPREAD x size (42 rows here),
    # and halving stops there, so shards average more than half of it.
    assert max(sizes) <= shards.SPREAD * 30 and sum(sizes) / len(sizes) >= shards.SPREAD * 30 / 2


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=400), st.lists(st.integers(1, 3), min_size=1), st.integers(1, 40))
def test_shards_are_digest_ranges_within_the_limit(groups, repeats, size):
    # A group of many rows (a document and its variants) may exceed the limit alone: it is
    # then a shard of its own, never cut.
    ids = [f"g{g}" for n, g in enumerate(groups) for _ in range(repeats[n % len(repeats)])]
    parts = shards.split(pa.table({"id": ids}), size)
    assert sum(p.num_rows for p in parts) == len(ids)
    place = lambda g: hashlib.sha256(g.encode()).digest()[:8]  # noqa: E731
    ranges = [sorted(place(g) for g in p.column("id").to_pylist()) for p in parts if p.num_rows]
    assert all(a[-1] < b[0] for a, b in zip(ranges, ranges[1:]))  # disjoint, in digest order
    for part in parts:
        if len(set(part.column("id").to_pylist())) > 1:
            assert part.num_rows <= shards.SPREAD * size


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=120), st.integers(1, 8))
def test_split_partitions_and_the_merge_order_restores_the_input(groups, size):
    table = pa.table({"id": [f"g{g}" for g in groups], "n": list(range(len(groups)))})
    parts = shards.split(table, size)
    merged = shards.in_input_order(pa.concat_tables(parts), shards.input_positions(table))
    assert sorted(merged.column("n").to_pylist()) == list(range(len(groups)))
    # Rows of one group come back in input order, groups by their first row.
    first = {g: groups.index(g) for g in groups}
    expected = sorted(range(len(groups)), key=lambda i: (first[groups[i]], i))
    assert merged.column("n").to_pylist() == expected


def _corpus(path: Path, docs: list[dict]) -> CollectConfig:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return CollectConfig(sources=[AnnotatedSource(name="world", kind="annotated", path=str(path))])


def test_sharded_stages_merge_to_the_unsharded_artifact_and_a_grown_corpus_reuses_shards(tmp_path):
    store = Store(f"file://{tmp_path}/store")
    docs = list(toyworld.iter_documents(330, seed=5))
    base, extra = docs[:300], docs[300:]
    collect = runner.execute("collect", _corpus(tmp_path / "a.jsonl", base), {}, store)
    extract_cfg, filter_cfg = ExtractConfig(backend="gold"), FilterConfig(min_entities=0)

    sharded = shards.run_all("extract", extract_cfg, {"docs": collect.ref}, store, 16)
    whole = runner.run_here("extract", extract_cfg.model_copy(update={"seed": 1}), {"docs": collect.ref}, store)
    assert store.read("extract", sharded.ref.key).equals(store.read("extract", whole.ref.key))
    # The filter adds variants (rows grouped by doc_id): sharded row-wise, the same rows.
    f_sharded = shards.run_all("filter", filter_cfg, {"table": sharded.ref}, store, 16)
    f_whole = runner.run_here("filter", filter_cfg.model_copy(update={"min_chars": 19}), {"table": sharded.ref}, store)
    assert f_sharded.summary.get("variants", 0) > 0
    assert store.read("filter", f_sharded.ref.key).equals(store.read("filter", f_whole.ref.key))
    assert store.read("filter-dropped", f_sharded.ref.key).equals(store.read("filter-dropped", f_whole.ref.key))

    # 10% more documents at random places: only the shards they fall in are new.
    rng = random.Random(3)
    grown = list(base)
    for d in extra:
        grown.insert(rng.randrange(len(grown) + 1), d)
    # Shards of 4 (~80), in a store of their own: 30 new documents leave most untouched.
    store = Store(f"file://{tmp_path}/grow")
    collect = runner.execute("collect", _corpus(tmp_path / "a.jsonl", base), {}, store)
    shards.run_all("extract", extract_cfg, {"docs": collect.ref}, store, 4)
    before = set(p.name for p in (tmp_path / "grow" / "extract-shard").iterdir())
    collect2 = runner.execute("collect", _corpus(tmp_path / "b.jsonl", grown), {}, store)
    assert not collect2.hit and collect2.ref.rows > collect.ref.rows  # (exact duplicates are quarantined)
    again = shards.run_all("extract", extract_cfg, {"docs": collect2.ref}, store, 4)
    new = set(p.name for p in (tmp_path / "grow" / "extract-shard").iterdir()) - before
    print(f"{len(extra)} of {len(grown)} documents new: {len(new)} of {again.summary['shards']} extract shards ran")
    assert len(new) <= len(extra) and len(new) < again.summary["shards"] // 2
    merged, docs2 = store.read("extract", again.ref.key), store.read("collect", collect2.ref.key)
    assert merged.column("id").equals(docs2.column("id")) and merged.column("meta").equals(docs2.column("meta"))


def test_a_sharded_repair_merges_to_the_unsharded_artifacts(tmp_path):
    # filter.ungrounded: repair writes a second side table: row shards merge it too, and a
    # finished run hands it back with the dropped one.
    store = Store(f"file://{tmp_path}/store")
    collect = runner.execute(
        "collect", _corpus(tmp_path / "a.jsonl", list(toyworld.iter_documents(120, seed=5))), {}, store
    )
    gold = store.read(
        "extract", runner.execute("extract", ExtractConfig(backend="gold"), {"docs": collect.ref}, store).ref.key
    )
    graphs = []
    for i, g in enumerate(gold.column("graph").to_pylist()):
        graph = json.loads(g)
        if i % 3 == 0 and graph["entities"]:  # a teacher that invents a name a third of the time
            graph["entities"].append({"id": 99, "text": "Zorblax Quintavius", "type": graph["entities"][0]["type"]})
            graph["relations"].append({"head": graph["entities"][0]["text"], "tail": "Zorblax Quintavius", "type": "x"})
        graphs.append(json.dumps(graph))
    teacher = store.write(
        "extract", "f" * 24, gold.set_column(gold.schema.get_field_index("graph"), "graph", pa.array(graphs))
    )
    cfg = FilterConfig(ungrounded="repair", min_entities=0)
    sharded = shards.run_all("filter", cfg, {"table": teacher}, store, 16)
    whole = runner.run_here("filter", cfg.model_copy(update={"min_chars": 19}), {"table": teacher}, store)
    assert (
        sharded.summary["repaired"] == whole.summary["repaired"]
        and sharded.summary["repaired"]["ungrounded entity removed"] > 0
    )
    assert sharded.summary["repair_removed"] == whole.summary["repair_removed"]
    for name in ("filter", "filter-dropped", "filter-repaired"):
        assert store.read(name, sharded.ref.key).equals(store.read(name, whole.ref.key)), name
    again = runner.execute("filter", cfg, {"table": teacher}, store)
    assert again.hit and set(again.side) == {"dropped", "repaired"}
