"""The corpus-graph stages (chunk → graph-extract → resolve → export) in the registry:
existing recipes are untouched (no new node, the same keys), a graph-only recipe runs
through the same runner, shards and LLM cache as every stage, and adding documents asks
the model only about the new chunks while the exports equal a build from scratch."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from t2g.dag import plan
from t2g.kg.config import GraphRecipe, load_recipe, validate
from t2g.stage import import_closure
from t2g.stages import STAGES
from tests.support.fake_graph import ENTITY_TYPES, RELATION_TYPES, corpus, grounded_answer, write_jsonl
from tests.support.fake_openai import FakeOpenAI

CONFIGS = [
    "configs/tiny.yaml",
    "configs/tiny-gold.yaml",
    "configs/tiny-r1.yaml",
    "configs/tiny-think.yaml",
    "configs/r1-70b.yaml",
]
GRAPH_STAGES = {
    "corpus",
    "chunk",
    "graph-extract",
    "resolve",
    "export",
    "graph_extract",
    "resolve-blocks",
    "resolve-pairs",
    "resolve_pairs",
}


@pytest.mark.parametrize("config", CONFIGS)
def test_existing_recipes_get_no_graph_node(config):
    recipe = load_recipe(config)
    assert not isinstance(recipe, GraphRecipe)  # the plain Recipe, as before
    assert not GRAPH_STAGES & {n.name for n in plan(recipe)}


def test_no_existing_stage_imports_the_graph_code():
    # Their keys hold the code version of their import closure: it must not grow.
    for name, spec in STAGES.items():
        if name in GRAPH_STAGES:
            continue
        closure = import_closure(spec.module)
        assert not {m for m in closure if m.startswith("t2g.kg") or m.split(".")[-1] in GRAPH_STAGES}, (name, closure)


def test_tiny_graph_builds_its_graph_with_the_grpo_model_it_trains():
    recipe = load_recipe("configs/tiny-graph.yaml")
    nodes = {n.name: n for n in plan(recipe, "export")}
    assert dict(nodes["graph-extract"].inputs) == {"chunks": "chunk", "model": "grpo"}
    assert dict(nodes["chunk"].inputs) == {"docs": "corpus"}  # not collect: the demo's collect keeps its key
    assert "evaluate" not in nodes and nodes["graph-extract"].sharding == "llm"


def test_a_graph_recipe_names_a_split_its_documents_have():
    data = _recipe_data("file:///tmp/x", "http://127.0.0.1:1/v1", "/tmp/docs.jsonl")
    data["chunk"]["splits"] = ["nowhere"]
    with pytest.raises(ValueError, match="chunk.splits .*names no split"):
        validate(data)


def _recipe_data(store: str, base_url: str, docs, **graph) -> dict:
    return {
        "name": "graph-test",
        "store": store,
        "collect": {
            "sources": [{"name": "docs", "kind": "jsonl", "path": str(docs), "split": "corpus"}],
            "near_duplicate_threshold": None,
        },
        "chunk": {"max_tokens": 64, "overlap_tokens": 8},
        "graph": {
            "backend": "openai",
            "model": "fake",
            "base_url": base_url,
            "entity_types": ENTITY_TYPES,
            "relation_types": RELATION_TYPES,
            "shard_size": 16,
            "max_retries": 0,
            **graph,
        },  # fmt: skip
        "resolve": {},
        "export": {"formats": ["graphml", "neo4j", "html"]},
    }


def _build(tmp_path, name: str, docs: list[dict], fake: FakeOpenAI, cache: str | None = None):
    from t2g.kg.local import run_graph

    path = tmp_path / f"{name}.jsonl"
    write_jsonl(path, docs)
    data = _recipe_data((tmp_path / f"store-{name}").as_uri(), fake.base_url, path)
    data["llm_cache"] = cache
    recipe = validate(data)
    return recipe, run_graph(recipe)


def _tables(recipe, outcomes):
    from t2g.store import Store

    store = Store(recipe.store)
    ref = outcomes["resolve"].ref
    return store.read("resolve", ref.key), store.read("resolve-edges", ref.key)


def _export_files(recipe, outcomes) -> dict[str, bytes]:
    from t2g.store import Store

    store, ref = Store(recipe.store), outcomes["export"].ref
    return {name: store.read_file("export", ref.key, name) for name in store.manifest("export", ref.key)["files"]}


def test_a_graph_only_recipe_builds_grounded_nodes_edges_and_exports(tmp_path):
    docs = corpus(60)
    with FakeOpenAI(answer=grounded_answer(ungrounded_every=7)) as fake:
        recipe, out = _build(tmp_path, "a", docs, fake)
    assert list(out) == ["collect", "chunk", "graph-extract", "resolve", "export"]
    extract = out["graph-extract"].summary
    assert extract["dropped"].get("entity: ungrounded", 0) >= 60 // 7  # "Jolie" is in no text
    nodes, edges = _tables(recipe, out)
    assert "Jolie" not in nodes.column("name").to_pylist()
    assert nodes.num_rows > 0 and edges.num_rows > 0
    assert set(nodes.column("type").to_pylist()) <= set(ENTITY_TYPES)
    files = _export_files(recipe, out)
    assert {"graph.graphml", "graph.html"} <= set(files) and any(f.startswith("neo4j-") for f in files)
    report = files["report.md"].decode()  # the run's Prefect artifact: drops by reason among the rest
    assert "ungrounded" in report and str(extract["dropped"]["entity: ungrounded"]) in report


def test_added_documents_ask_only_for_new_chunks_and_export_as_a_fresh_build(tmp_path):
    old, new = corpus(80), corpus(8, start=80)
    cache = (tmp_path / "llm").as_uri()
    with FakeOpenAI(answer=grounded_answer()) as fake:
        recipe, first = _build(tmp_path, "first", old, fake, cache)
        asked = fake.answered
        recipe2, grown = _build(tmp_path, "grown", old + new, fake, cache)
        new_requests = fake.answered - asked
    chunks = first["chunk"].summary["chunks"], grown["chunk"].summary["chunks"]
    assert new_requests == chunks[1] - chunks[0] > 0  # only the new documents' chunks reached the server
    with FakeOpenAI(answer=grounded_answer()) as fresh_server:  # a fresh store and a fresh cache
        recipe3, scratch = _build(tmp_path, "scratch", old + new, fresh_server)
        assert fresh_server.answered == chunks[1]
    before, _ = _tables(recipe, first)
    after, _ = _tables(recipe2, grown)
    kept = set(zip(before.column("node_id").to_pylist(), before.column("name").to_pylist()))
    assert kept <= set(zip(after.column("node_id").to_pylist(), after.column("name").to_pylist()))  # old ids unchanged
    assert _export_files(recipe2, grown) == _export_files(recipe3, scratch)
    assert _tables(recipe2, grown)[0].equals(_tables(recipe3, scratch)[0])


def test_t2g_graph_builds_a_folder_of_texts_with_a_served_model(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    folder = tmp_path / "texts"
    folder.mkdir()
    for d in corpus(12):
        (folder / f"{d['id']}.txt").write_text(d["text"], encoding="utf-8")
    (folder / "zz-empty.txt").write_text("\n", encoding="utf-8")  # a real corpus is rarely clean:
    (folder / "zz-latin1.txt").write_bytes("Café Müller.".encode("latin-1"))  # left out, and said why
    out = tmp_path / "out"
    with FakeOpenAI(answer=grounded_answer(ungrounded_every=5)) as fake:
        args = ["graph", "--model", "fake", "--base-url", fake.base_url, "--input", str(folder), "--out", str(out),
                "--entity-types", ",".join(ENTITY_TYPES), "--relation-types", ",".join(RELATION_TYPES)]  # fmt: skip
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    quarantined = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["where"].rsplit("/", 1)[1], q["reason"].split(" (")[0]) for q in quarantined] == [
        ("zz-empty.txt", "the file is empty"), ("zz-latin1.txt", "cannot read it as UTF-8 text"),
    ]  # fmt: skip
    assert "skipping 2 bad document(s)" in result.output and "quarantined" in result.output
    for name in ("nodes.parquet", "edges.parquet", "mentions.parquet", "graph.graphml", "graph.html"):
        assert (out / name).is_file(), name
    assert (out / "neo4j").is_dir() and any((out / "neo4j").iterdir())
    mentions = pq.read_table(out / "mentions.parquet").to_pylist()
    texts = {d["id"] + ".txt": d["text"] for d in corpus(12)}
    assert mentions and all(texts[m["doc_id"]][m["start"] : m["end"]] == m["text"] for m in mentions)


def test_t2g_graph_refuses_a_half_given_call(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["graph", "--model", "x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--input" in result.output


def test_the_identities_corpus_is_read_with_its_gold_without_touching_collect(tmp_path):
    import json

    from t2g.kg.identities import documents
    from t2g.kg.local import run_graph
    from t2g.store import Store

    recipe = load_recipe(
        "configs/tiny-graph.yaml", store=(tmp_path / "s").as_uri(), overrides=["corpus.sources.0.n=12"]
    )
    out = run_graph(recipe, until="chunk")
    assert list(out) == ["corpus", "chunk"]  # the training collect is not needed for chunks
    rows = Store(recipe.store).read("corpus", out["corpus"].ref.key).to_pylist()
    expected = documents(12, 4)
    assert [r["text"] for r in rows] == [d["text"] for d in expected]
    gold = json.loads(rows[0]["gold"])
    assert {e["text"] for e in gold["entities"]} == {m["text"] for m in expected[0]["mentions"]}


def judging(extract):
    """An answer function for FakeOpenAI: `extract`'s graphs, and no to every judge question."""

    def answer(key: str, body: dict):
        if "same real-world entity" in body["messages"][-1]["content"]:
            return '{"same": false}', None
        return extract(key, body)

    return answer


@pytest.mark.parametrize("sharded", [False, True], ids=["one-task-resolve", "sharded-pairs-and-judge"])
def test_t2g_graph_config_runs_the_graph_stages_through_prefect(tmp_path, prefect_api, sharded):
    import yaml
    from prefect.blocks.system import Secret

    from tests.support.flowrun import run_t2g

    docs = tmp_path / "docs.jsonl"
    write_jsonl(docs, corpus(30))
    with FakeOpenAI(answer=judging(grounded_answer(ungrounded_every=7))) as fake:
        recipe = tmp_path / "graph.yaml"
        data = _recipe_data("file://.t2g/store", fake.base_url, docs)
        if sharded:  # resolve-pairs as row shards on the flow's task runner, the judge in resolve's task
            Secret(value="judge-key-7f3").save("t2g-test-judge-key", overwrite=True)  # the judge's key, from a block
            data["resolve"] = {"shard_size": 40, "judge": {"backend": "openai", "model": "judge", "base_url": fake.base_url,
                                                           "threshold": 0.5, "max_retries": 0,
                                                           "api_key_block": "t2g-test-judge-key"}}  # fmt: skip
        recipe.write_text(yaml.safe_dump(data))
        first = run_t2g(["graph", "--config", str(recipe)], tmp_path, prefect_api.env())
        again = run_t2g(["graph", "--config", str(recipe)], tmp_path, prefect_api.env())
    assert first.returncode == 0, first.output[-3000:]
    resolve = ["resolve-blocks", "resolve-pairs", "resolve"] if sharded else ["resolve"]
    assert list(first.stages) == ["collect", "chunk", "graph-extract", *resolve, "export"], first.output[-3000:]
    assert not any(s["hit"] for s in first.stages.values())
    assert again.returncode == 0 and all(s["hit"] for s in again.stages.values()), again.output[-3000:]
    export = Path(first.stages["export"]["uri"].removeprefix("file://"))
    assert "ungrounded" in next(export.glob("files/*/report.md")).read_text()
    if sharded:
        manifest = (Path(first.stages["resolve"]["uri"].removeprefix("file://")) / "_manifest.json").read_text()
        summary = json.loads(manifest)["summary"]
        assert summary["judge"]["asked"] > 0 and summary["judge"]["not same"] == summary["judge"]["asked"], summary
        # Every question went with the block's key; graph extraction's requests with its own.
        assert fake.authorizations.count("Bearer judge-key-7f3") == summary["judge"]["asked"], set(fake.authorizations)
        assert "judge-key-7f3" not in first.output


def test_t2g_graph_names_the_option_when_entity_types_names_no_type(tmp_path):
    # " , ," passed the split as an empty list, and pydantic's error did not say which option:
    # "List should have at least 1 item after validation, not 0".
    from typer.testing import CliRunner

    from flows.cli import app

    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "text": "Bob."}\n', encoding="utf-8")
    args = ["graph", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--input", str(path),
            "--out", str(tmp_path / "out"), "--entity-types", " , ,"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--entity-types ' , ,' names no type" in result.output, result.output
