"""Fuzzy pairs by shards of blocking keys (`resolve.shard_size`): any cut of the blocks into
shards of whole blocks gives the pairs of one process, and a recipe resolved with 1 or
several shards (or none) gives the same graph, judge included."""

from __future__ import annotations

import json
import random

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g import shards
from t2g.kg.blocking import PAIRS, UNCERTAIN, block_pairs, blocking_keys, concat_pairs, fuzzy_pairs
from t2g.kg.config import BlockPairsConfig, validate
from t2g.kg.resolve import resolve
from t2g.kg.tables import MENTIONS, RELATIONS
from t2g.stages.resolve_pairs import resolve_blocks, resolve_pairs
from tests.support.fake_graph import corpus, grounded_answer, write_jsonl
from tests.support.fake_openai import FakeOpenAI

WORDS = [
    "kortron",
    "kortran",
    "zentek",
    "zentec",
    "velmont",
    "velmond",
    "labs",
    "lab",
    "freight",
    "ostvik",
    "marine",
    "marina",
]
TYPES = ["person", "organisation", "location"]


@st.composite
def mention_tables(draw):
    """Mentions of names made of a few near-identical words, of three types, in a few documents."""
    names = draw(st.lists(st.tuples(st.sampled_from(TYPES), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)),
                          min_size=1, max_size=25))  # fmt: skip
    rows = []
    for i, (etype, words) in enumerate(names):
        text = " ".join(w.capitalize() for w in words)
        doc = f"d{draw(st.integers(0, 4))}"
        rows.append({"doc_id": doc, "chunk_id": f"{doc}#0", "start": 100 * i, "end": 100 * i + len(text), "text": text,
                     "type": etype, "name": text})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=MENTIONS)


def judge(pairs):
    return [len(a) % 2 == 0 for _, a, _ in pairs]  # any fixed answer per pair


def sharded_pairs(mentions: pa.Table, cut, cfg: BlockPairsConfig) -> pa.Table:
    """What the resolve-blocks and resolve-pairs nodes compute, the blocks cut by `cut`, the
    shards' pairs concatenated as they come (as t2g.shards merges them: a pair two shards
    found is there twice, in shard order)."""
    blocks = resolve_blocks(cfg, mentions).main
    return pa.concat_tables([resolve_pairs(cfg, part).main for part in reversed(cut(blocks))])


def random_cut(seed: int, n: int):
    """Whole blocks, each to a random one of n shards."""

    def cut(blocks: pa.Table) -> list[pa.Table]:
        rng = random.Random(seed)
        ids = blocks.column("id").to_pylist()
        shard_of = {b: rng.randrange(n) for b in sorted(set(ids))}
        return [blocks.filter(pa.array([shard_of[b] == s for b in ids], pa.bool_())) for s in range(n)]

    return cut


@settings(max_examples=40, deadline=None)
@given(mention_tables(), st.integers(1, 6), st.integers(0, 10_000), st.sampled_from([None, 0.7]), st.integers(1, 40))
def test_sharded_pairs_are_the_pairs_of_one_process(mentions, n, seed, judge_threshold, size):
    cfg = BlockPairsConfig(fuzzy_threshold=0.9, judge_threshold=judge_threshold)
    options = {"fuzzy_threshold": 0.9} | (
        {"judge_threshold": judge_threshold, "uncertain": True} if judge_threshold else {}
    )
    one = block_pairs(blocking_keys(mentions), **options)
    assert concat_pairs([sharded_pairs(mentions, random_cut(seed, n), cfg)]).equals(one)
    assert concat_pairs([sharded_pairs(mentions, lambda b: shards.split(b, size), cfg)]).equals(one)  # t2g.shards' cut
    if judge_threshold is None:
        assert UNCERTAIN not in one.column("rule").to_pylist()
        assert one.equals(fuzzy_pairs(mentions))
    empty = pa.Table.from_pylist([], schema=RELATIONS)
    with_judge = {"judge": judge, "judge_threshold": judge_threshold} if judge_threshold else {}
    alone = resolve(mentions, empty, **with_judge)
    split = resolve(mentions, empty, pairs=sharded_pairs(mentions, random_cut(seed, n), cfg), **with_judge)
    for table in ("nodes", "mentions", "merges"):
        assert getattr(split, table).equals(getattr(alone, table)), table


def test_the_identities_world_resolves_the_same_in_1_or_4_shards():
    from t2g.kg import identities

    m, r = identities.gold_tables(identities.documents(80))
    cfg = BlockPairsConfig(fuzzy_threshold=0.9, judge_threshold=0.75)
    alone = resolve(m, r, judge=judge)
    for n in (1, 4):
        pairs = sharded_pairs(m, random_cut(n, n), cfg)
        assert pairs.num_rows > 0
        g = resolve(m, r, pairs=pairs, judge=judge)
        for table in ("nodes", "edges", "mentions", "merges", "evidence"):
            assert getattr(g, table).equals(getattr(alone, table)), (n, table)


# Spelling variants the fuzzy tier or the judge decides ("Zentec Altavia" 0.93, "Okafour" 0.95,
# "Brightwill Corvix" 0.88: asked).
VARIANTS = [
    "Ada Okafour works for Zentec Altavia. Zentec Altavia is located in Paris. Report 900.",
    "Marin Lindqvist works for Brightwill Corvix. Brightwill Corvix is located in Lagos. Report 901.",
    "Nadia Silva works for Brightwell Corvex. Brightwell Corvex is located in Oslo. Report 902.",
    "Piet Novak works for Zentek Altavia. Zentek Altavia is located in Lima. Report 903.",
]


def answer(key: str, body: dict):
    content = body["messages"][-1]["content"]
    if "same real-world entity" in content:
        return json.dumps({"same": "Brightwill" in content}), None
    return grounded_answer()(key, body)


def test_a_recipe_resolves_the_same_unsharded_in_one_shard_and_in_several(tmp_path):
    from t2g.kg.local import run_graph
    from t2g.store import Store
    from tests.t2g.stages.test_graph_stages import _export_files, _recipe_data

    docs = corpus(60) + [{"id": f"v{i}", "text": t} for i, t in enumerate(VARIANTS)]
    path = tmp_path / "docs.jsonl"
    write_jsonl(path, docs)
    results = {}
    with FakeOpenAI(answer=answer) as fake:
        for name, size in (("unsharded", None), ("one", 100_000), ("several", 60)):
            data = _recipe_data((tmp_path / name).as_uri(), fake.base_url, path)
            data["llm_cache"] = (tmp_path / "llm").as_uri()
            data["resolve"] = {
                "judge": {"backend": "openai", "model": "fake-judge", "base_url": fake.base_url},
                "shard_size": size,
            }
            recipe = validate(data)
            out = run_graph(recipe)
            store, ref = Store(recipe.store), out["resolve"].ref
            tables = {
                t: store.read(f"resolve{t}", ref.key) for t in ("", "-edges", "-mentions", "-merges", "-evidence")
            }
            results[name] = (out, tables, _export_files(recipe, out))
    unsharded, one, several = results["unsharded"], results["one"], results["several"]
    assert "resolve-pairs" not in unsharded[0]
    assert one[0]["resolve-pairs"].summary["shards"] == 1 and several[0]["resolve-pairs"].summary["shards"] >= 4
    rules = unsharded[0]["resolve"].summary["merges_by_rule"]
    assert rules.get("fuzzy", 0) >= 2 and rules.get("judge", 0) >= 1, rules  # Brightwill Corvix joined by the judge
    for other in (one, several):
        assert other[1].keys() == unsharded[1].keys()
        for t, table in unsharded[1].items():
            assert other[1][t].equals(table), t
        assert other[2] == unsharded[2]  # every export file, byte for byte


def test_shards_pairs_in_any_order_and_twice_give_the_same_merges():
    """Which pair of a triangle joins which name depends on the order the pairs are walked:
    resolve puts the shards' pairs in one order first (t2g.shards concatenates them as the
    shards come, a pair two shards found twice)."""
    names = ["Alpha Works", "Alpha Work", "Alpha Wonks"]
    m = pa.Table.from_pylist([{"doc_id": f"d{i}", "chunk_id": f"d{i}#0", "start": 0, "end": len(t), "text": t,
                               "type": "organisation", "name": t} for i, t in enumerate(names)], schema=MENTIONS)  # fmt: skip
    keys = sorted(n.lower() for n in names)
    triangle = [{"type": "organisation", "a": a, "b": b, "rule": "fuzzy", "score": 0.95}
                for i, a in enumerate(keys) for b in keys[i + 1 :]]  # fmt: skip
    empty = pa.Table.from_pylist([], schema=RELATIONS)
    walked = resolve(m, empty, pairs=pa.Table.from_pylist(triangle, schema=PAIRS))
    shuffled = pa.Table.from_pylist(triangle[::-1] + triangle[:1], schema=PAIRS)
    again = resolve(m, empty, pairs=shuffled)
    assert walked.merges.num_rows == 2 and again.merges.equals(walked.merges)
