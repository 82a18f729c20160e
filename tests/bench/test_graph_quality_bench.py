"""The long-document and corpus-graph quality benchmark (bench/graph_quality.py) measures what it
says: with an extractor that answers every gold name of its text (an oracle in place of the
model's generation), chunked extraction and each part alone find every gold mention, the
truncated pass finds fewer (it reads only the head), every graph mention is its source's
text, and the edges are the gold facts. The model itself only gives the context and the
tokenizer (a tiny random one)."""

from __future__ import annotations

import json
import re

import pytest

from bench import graph_quality
from t2g.kg import identities
from t2g.llm import Result
from t2g.llm import cache as llm_cache

N_DOCS = 10  # one long document (every 10th)


def _oracle(docs):
    names = {(m["text"], m["type"]) for d in docs for m in d["mentions"]}
    facts = {(f["head_text"], f["tail_text"], f["type"]) for d in docs for f in d["facts"]}

    def generate(cfg, model, requests, api_key=None):
        out = []
        for r in requests:
            text = re.search(r"\nText: (.*)\Z", r.messages[-1]["content"], re.S).group(1)
            ents = [{"text": n, "type": t} for n, t in sorted(names) if n in text]
            rels = [{"head": h, "tail": t, "type": ty} for h, t, ty in sorted(facts) if h in text and t in text]
            out.append(Result(text=json.dumps({"entities": ents, "relations": rels}), finish_reason="stop"))
        return out, {}

    return generate


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(graph_quality.smoke_model(tmp_path_factory.mktemp("graph-quality-model")))


def test_an_oracle_finds_every_gold_mention_chunked_and_alone_and_fewer_truncated(model, monkeypatch):
    docs = identities.documents(N_DOCS, seed=4)  # configs/tiny-graph.yaml's corpus seed
    monkeypatch.setattr(llm_cache, "generate", _oracle(docs))
    q = graph_quality.measure(model, n_docs=N_DOCS, max_new_tokens=48)
    long = q["long_documents"]
    assert long["documents"] == long["world_long_documents"] == 1, long
    assert long["chunked"]["mention_recall"] == long["parts_alone"]["mention_recall"] == 1.0, long
    assert long["ratio"] == 1.0 and long["meets_goal"], long
    assert long["mean_chars_read_by_truncated_pass"] < long["mean_chars"], long
    assert 0 < long["truncated"]["mention_recall"] < 1.0, long
    # grounded in the whole document, a name read in the head is found further on too
    assert long["truncated"]["mention_recall"] < long["truncated_grounded_in_whole_document"]["mention_recall"], long
    corpus = q["corpus_graph"]
    assert corpus["graph_mentions"] > 100 and corpus["span_equals_text"] == 1.0, corpus
    assert corpus["mention_recall"] == 1.0, corpus
    assert corpus["edges_vs_gold_facts"]["recall"] >= 0.9, corpus
    assert corpus["bcubed_found_mentions"]["f1"] >= 0.9, corpus


def test_parts_tile_the_document_at_sentence_ends():
    doc = next(d for d in identities.documents(N_DOCS, seed=4) if len(d["text"]) > 2000)
    parts = graph_quality.part_rows(doc, identities.World().max_facts)
    assert len(parts) >= 10
    assert "".join(p["text"] for p in parts).replace(" ", "") == doc["text"].replace(" ", "")
    assert all(p["text"] == doc["text"][p["start"] : p["end"]] and p["text"].endswith(".") for p in parts)
    # no gold mention is cut by a part boundary
    assert all(any(p["start"] <= m["start"] and m["end"] <= p["end"] for p in parts) for m in doc["mentions"])


def test_without_a_model_the_benchmark_names_the_variable(monkeypatch):
    monkeypatch.delenv(graph_quality.ENV, raising=False)
    with pytest.raises(SystemExit, match=graph_quality.ENV):
        graph_quality.run()
