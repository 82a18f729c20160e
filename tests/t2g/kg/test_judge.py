"""The LLM judge of uncertain fuzzy pairs (`resolve.judge`, t2g.kg.judge), against the test
suite's fake OpenAI-compatible server: a yes merges with rule `judge`, a no keeps apart, a
rerun is answered by the LLM cache, garbage is counted and never merges, a pair never
crosses types, and the judge's settings are part of the resolve stage's key."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from t2g.kg.config import ResolveConfig, load_recipe, validate
from t2g.kg.judge import parse
from t2g.kg.tables import CHUNKS
from t2g.llm.base import Result
from t2g.llm.cache import ResponseCache, use_cache
from t2g.runner import config_dict, stage_key
from t2g.stages import registered
from t2g.stages.resolve import resolve as resolve_stage
from t2g.store import ArtifactRef, Store
from tests.support.fake_openai import FakeOpenAI
from tests.t2g.kg.test_resolve import docs_to_tables, nodes_by_surface

DOCS = {
    "c": "Kortron Labs rose in Lagos.",
    "d": "Kortran Lab rose again.",
    "e": "Velmont Freight grew.",
    "f": "Velmond Freigh shrank.",
    "g": "Ostvik Marine sold boats.",
    "h": "They sailed to Ostvik Marinas.",
}
SPANS = {
    "c": [("Kortron Labs", "organisation"), ("Lagos", "location")],
    "d": [("Kortran Lab", "organisation")],
    "e": [("Velmont Freight", "organisation")],
    "f": [("Velmond Freigh", "organisation")],
    "g": [("Ostvik Marine", "organisation")],
    "h": [("Ostvik Marinas", "location")],  # 0.89 from the organisation's name, but another type
}


def tables():
    m, r = docs_to_tables(DOCS, SPANS)
    chunks = pa.Table.from_pylist([{"doc_id": d, "chunk_id": f"{d}#0", "chunk_index": 0, "start": 0, "end": len(t), "text": t}
                                   for d, t in DOCS.items()], schema=CHUNKS)  # fmt: skip
    return m, r, chunks


def says(body: dict) -> str:
    """Yes for the Kortron pair, no for any other."""
    return json.dumps({"same": "Kortron" in body["messages"][-1]["content"]})


def cfg(base_url: str, **judge) -> ResolveConfig:
    return ResolveConfig(
        judge={"backend": "openai", "model": "fake-judge", "base_url": base_url, "max_retries": 0, **judge}
    )


def run(config: ResolveConfig, cache: ResponseCache):
    m, r, chunks = tables()
    with use_cache(cache):
        return resolve_stage(config, m, r, chunks)


def merged(result) -> dict:
    class G:  # nodes_by_surface reads .mentions
        mentions = result.side["mentions"]

    return nodes_by_surface(G)


def test_the_judges_yes_merges_with_rule_judge_its_no_keeps_apart_and_a_rerun_asks_nothing(tmp_path):
    cache = ResponseCache(Store(tmp_path.as_uri()))
    with FakeOpenAI(answer=lambda key, body: (says(body), None)) as fake:
        first = run(cfg(fake.base_url), cache)
        prompts = [b["messages"][-1]["content"] for b in fake.bodies]
        asked = fake.answered
        again = run(cfg(fake.base_url), cache)
        assert fake.answered == asked  # the second run sent nothing: every answer from the cache
    n = merged(first)
    assert n[("c", "Kortron Labs")] == n[("d", "Kortran Lab")]
    assert n[("e", "Velmont Freight")] != n[("f", "Velmond Freigh")]
    assert first.summary["merges_by_rule"].get("judge") == 1
    assert "judge" in set(first.side["merges"].column("rule").to_pylist())
    counts = {k: first.summary["judge"][k] for k in ("asked", "same", "not same", "unparsed", "failed")}
    assert counts == {"asked": 2, "same": 1, "not same": 1, "unparsed": 0, "failed": 0}
    assert asked == 2 and len(prompts) == 2
    kortron = next(p for p in prompts if "Kortron" in p)
    assert '"Kortran Lab" and "Kortron Labs" (type organisation)' in kortron  # keys in order
    assert "Kortron Labs rose in Lagos." in kortron  # a sentence where each name occurs
    assert fake.bodies[0]["response_format"]["json_schema"]["schema"]["required"] == ["same"]
    # a cross-type pair is never sent: blocks are per type
    assert not any("Ostvik Marine" in p and "Ostvik Marinas" in p for p in prompts)
    assert n[("g", "Ostvik Marine")] != n[("h", "Ostvik Marinas")]
    assert again.summary["llm"]["cache_hits"] == 2 and again.summary["llm"]["cache_misses"] == 0
    assert again.main.equals(first.main) and again.side["merges"].equals(first.side["merges"])


@pytest.mark.parametrize("garbage", ["Yes, they are.", '{"same": "yes"}', "[true]", '{"same": true'])
def test_garbage_answers_are_counted_never_merged(tmp_path, garbage):
    with FakeOpenAI(answer=lambda key, body: (garbage, None)) as fake:
        out = run(cfg(fake.base_url), ResponseCache(Store(tmp_path.as_uri())))
    n = merged(out)
    assert n[("c", "Kortron Labs")] != n[("d", "Kortran Lab")]
    assert "judge" not in out.summary["merges_by_rule"]
    assert out.summary["judge_unparsed"] == out.summary["judge"]["asked"] == 2


def test_a_failed_request_counts_as_no(tmp_path):
    with FakeOpenAI(schedule={"?": ["400", "400"]}, answer=lambda key, body: (says(body), None)) as fake:
        out = run(cfg(fake.base_url), ResponseCache(Store(tmp_path.as_uri())))
    assert out.summary["judge"]["failed"] == 2 and "judge" not in out.summary["merges_by_rule"]


def test_without_a_judge_nothing_is_asked_and_the_key_is_as_before():
    plain = load_recipe("configs/tiny-graph.yaml").resolve
    assert config_dict(plain) == {"fuzzy_threshold": 0.9}  # the dump (and so the key) of recipes without a judge
    assert registered("resolve").externals(plain) == {}
    up = {p: ArtifactRef(f"file:///s/{p}", p, "k" * 8, 1) for p in ("mentions", "relations", "chunks")}
    judged = cfg("http://127.0.0.1:1/v1")
    other_model = cfg("http://127.0.0.1:1/v1", model="other-judge")
    keys = {
        stage_key("resolve", c, up) for c in (plain, judged, other_model, cfg("http://127.0.0.1:1/v1", threshold=0.8))
    }
    assert len(keys) == 4  # the judge's settings and model are in the key
    assert registered("resolve").externals(judged) == {
        "served model fake-judge": "served:fake-judge@"
    }  # fingerprinted as graph's
    sharded = plain.model_copy(update={"shard_size": 50})
    assert config_dict(sharded) == config_dict(plain)  # how pairs are computed is not


def test_a_judge_recipe_section_is_checked():
    data = {"name": "x", "store": "file:///tmp/x", "collect": {"sources": [{"name": "d", "kind": "jsonl", "path": "/tmp/d.jsonl"}]},
            "resolve": {"fuzzy_threshold": 0.9, "judge": {"backend": "openai", "model": "m", "threshold": 0.95}}}  # fmt: skip
    with pytest.raises(ValueError, match="judge.threshold .* must be below fuzzy_threshold"):
        validate(data)
    data["resolve"]["judge"] = {"backend": "openai", "model": "@teacher"}
    with pytest.raises(ValueError, match="not judges"):
        validate(data)
    data["resolve"]["judge"] = {"backend": "openai", "model": "m", "api_key_block": "b"}  # read in the flow's task
    assert validate(data).resolve.judge.api_key_block == "b"
    data["resolve"]["judge"] = {"backend": "openai", "model": "m"}
    assert validate(data).resolve.judge.threshold == 0.75


@given(st.text(max_size=40))
def test_parse_takes_only_a_same_boolean(text):
    answer = parse(Result(text=text))
    try:
        value = json.loads(text.strip())
    except ValueError:
        value = None
    expected = value.get("same") if isinstance(value, dict) and isinstance(value.get("same"), bool) else None
    assert answer is expected


@pytest.mark.parametrize(
    "text,expected", [('{"same": true}', True), (' {"same": false}\n', False), ('{"same": 1}', None)]
)
def test_parse_examples(text, expected):
    assert parse(Result(text=text)) is expected


@pytest.mark.parametrize(
    "override",
    [
        "resolve.judge.base_url=http://elsewhere/v1",
        "resolve.judge.api_key_env=OTHER_API_KEY",
        "resolve.judge={backend: openai, model: m, base_url: http://elsewhere/v1}",
    ],
)
def test_a_deployment_run_may_not_point_the_judge_elsewhere(override):
    from t2g.config import RecipeError
    from t2g.recipe_input import check_deployment_overrides

    with pytest.raises(RecipeError, match="may not be overridden by a deployment run"):
        check_deployment_overrides([override])
