"""The rejection-sampling stage (t2g/stages/sample.py) with scripted answers: only answers
that pass the filter's checks and reach min_reward are kept, the best of them, and every
document and answer is accounted for, whatever the model says."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2g import counts, llm
from t2g.config import FilterConfig, SampleConfig
from t2g.graph import graph_from_obj
from t2g.llm import cache as llm_cache
from t2g.stages import sample as sample_mod
from t2g.stages.filter import MAIN_SCHEMA, Rejected, check
from t2g.stages.reason import OUTPUT_FIELDS
from t2g.stages.sft import with_samples

EXAMPLES = pa.schema(list(MAIN_SCHEMA) + OUTPUT_FIELDS)
CHECKS = FilterConfig(min_chars=5)


def graph(entities, relations=()) -> str:
    return json.dumps({"entities": [{"id": i, "text": t, "type": ty} for i, (t, ty) in enumerate(entities)],
                       "relations": [{"head": h, "tail": t, "type": ty} for h, t, ty in relations]})  # fmt: skip


def row(
    doc: str, text: str, label: str, split: str = "pool", variant: int = 0, gold: str | None = None, **types
) -> dict:
    return {"id": doc if not variant else f"{doc}~v{variant}", "doc_id": doc, "text": text, "source": "t", "split": split,
            "entity_types": types.get("etypes", ["person", "company"]), "relation_types": types.get("rtypes", ["works_for"]),
            "graph": label, "gold": gold, "variant": variant, "think": None, "target": label}  # fmt: skip


MARIN = graph([("Marin", "person"), ("Zentek", "company")], [("Marin", "Zentek", "works_for")])
ANA = graph([("Ana", "person"), ("Lumo", "company")], [("Ana", "Lumo", "works_for")])
KAI_LABEL = graph(
    [("Kai", "person"), ("Orbis", "company"), ("Zed", "person")], [("Kai", "Orbis", "works_for")]
)  # Zed: not in the text


@pytest.fixture
def scripted(monkeypatch):
    """Answers the stage's requests from a list given document by document (k answers
    each), whatever order the stage sends them in; records the requests."""
    state = {"answers": [], "requests": []}

    def generate(cfg, model, requests, api_key=None):
        state["requests"] = list(requests)
        given = state["answers"]
        assert len(given) == len(requests), (len(given), len(requests))
        seen: dict[str, int] = {}
        for r in requests:  # the documents in the order of their first request
            seen.setdefault(r.messages[1]["content"], len(seen))
        k = len(requests) // max(len(seen), 1)
        by_request = [given[seen[r.messages[1]["content"]] * k + r.sample] for r in requests]
        return [
            llm.Result(text=a, finish_reason="stop") if a is not None else llm.failed("boom") for a in by_request
        ], {}

    monkeypatch.setattr(llm_cache, "generate", generate)
    return state


def run(cfg: SampleConfig, examples: list[dict], dropped: pa.Table | None = None):
    return sample_mod.sample(cfg, pa.Table.from_pylist(examples, schema=EXAMPLES), Path("/nowhere"), dropped)


def test_keeps_the_best_grounded_answer_that_reaches_min_reward(scripted):
    cfg = SampleConfig(k=3, min_reward=0.8, splits=["pool"], checks=CHECKS)
    examples = [
        row("a", "Marin works for Zentek in Oslo.", MARIN),
        row("a", "Marin works for Zentek in Oslo.", MARIN, variant=1),  # a variant: not sampled
        row("s", "Seed text about Marin.", MARIN, split="seed"),  # not a sampled split
        row("b", "Ana works for Lumo since May.", ANA),
    ]
    kai = {"id": "c", "text": "Kai works for Orbis.", "source": "t", "split": "pool", "entity_types": ["person", "company"],
           "relation_types": ["works_for"], "gold": None, "graph": KAI_LABEL, "error": "", "reason": "ungrounded entity", "detail": "Zed"}  # fmt: skip
    no_label = {**kai, "id": "d", "graph": None, "error": "boom", "reason": "extraction error"}
    dropped = pa.Table.from_pylist([kai, no_label])
    scripted["answers"] = [
        # a: the label itself (reward 1); the label plus a name not in the text (fails the filter); not JSON
        MARIN,
        graph([("Marin", "person"), ("Zentek", "company"), ("Bob", "person")], [("Marin", "Zentek", "works_for")]),
        "no graph",
        # b: the best is 0.5 (both entities, no relation): below min_reward; a type not requested fails
        graph([("Ana", "person")]),
        graph([("Ana", "person"), ("Lumo", "company")]),
        graph([("Ana", "city")]),
        # c (the filter dropped the teacher's label, with an ungrounded Zed): copying the label scores 1.0 but
        # is not grounded; the grounded answer scores 0.9 and is kept
        KAI_LABEL,
        graph([("Kai", "person"), ("Orbis", "company")], [("Kai", "Orbis", "works_for")]),
        None,
    ]
    result = run(cfg.model_copy(update={"dropped": True}), examples, dropped)

    kept = result.main.to_pylist()
    assert [r["id"] for r in kept] == ["a~s0", "c~s1"] and [r["doc_id"] for r in kept] == ["a", "c"]
    assert kept[0]["graph"] == graph_from_obj(json.loads(MARIN)).to_json()  # the student's answer is the label now
    assert kept[1]["target"] == kept[1]["graph"] and "Zed" not in kept[1]["graph"]
    for r in kept:  # every kept answer passes the filter's checks
        check({**r, "error": "", "gold": None}, CHECKS)
    assert result.main.schema == EXAMPLES  # SFT-ready: the reason stage's schema

    s = result.summary
    assert (s["documents"], s["accepted"], s["rejected"], s["samples"]) == (3, 2, 1, 9)
    assert s["reasons"] == {
        sample_mod.VARIANT: 1,
        sample_mod.OTHER_SPLIT: 1,
        sample_mod.UNUSABLE: 1,
        sample_mod.LOW_REWARD: 1,
    }
    assert counts.balance(s, result.main.num_rows) == 0  # rows in = each reason + rows out
    rejected = result.side["rejected"].to_pylist()
    assert len(rejected) == s["samples"] - s["accepted"]
    verdicts = {(r["id"], r["sample"]): r["verdict"] for r in rejected}
    assert verdicts == {
        ("a", 1): "fails the filter: ungrounded entity", ("a", 2): sample_mod.NO_GRAPH,
        ("b", 0): sample_mod.BELOW, ("b", 1): sample_mod.BELOW, ("b", 2): "fails the filter: entity type not requested",
        ("c", 0): "fails the filter: ungrounded entity", ("c", 2): sample_mod.GENERATION_ERROR,
    }  # fmt: skip
    assert {r["sample"]: r["reward"] for r in rejected if r["id"] == "b"}[1] == pytest.approx(0.5)
    assert s["best_reward"]["0.5-0.6"] == 1 and s["best_reward"]["0.9-1.0"] == 2
    assert result.files["rewards.png"].startswith(b"\x89PNG") and b"accepted 2 documents" in result.files["report.md"]
    # k requests per document, each its own sample (seed + j): vLLM would answer one seed k times alike
    reqs = scripted["requests"]
    assert [(r.sample, r.sampling.seed) for r in reqs[::3]] == [(0, 0), (1, 1), (2, 2)] and reqs[0].messages == reqs[
        3
    ].messages


def test_a_document_without_a_label_is_kept_only_by_consensus(scripted):
    cfg = SampleConfig(k=3, min_reward=0.8, dropped=True, consensus=0.6, checks=CHECKS)
    text = "Kai works for Orbis."
    no_label = {"id": "d", "text": text, "source": "t", "split": "pool", "entity_types": ["person", "company"],
                "relation_types": ["works_for"], "gold": None, "graph": None, "error": "boom", "reason": "extraction error", "detail": ""}  # fmt: skip
    agreed = graph([("Kai", "person"), ("Orbis", "company")], [("Kai", "Orbis", "works_for")])
    scripted["answers"] = [agreed, agreed, graph([("Kai", "person")])]  # answer 0: 1.0 against 1, 0.33 against 2
    out = run(cfg, [], pa.Table.from_pylist([no_label]))
    assert [r["id"] for r in out.main.to_pylist()] == ["d~s0"]
    scripted["answers"] = [agreed, graph([("Orbis", "company")]), graph([("Kai", "person")])]  # no two agree
    out = run(cfg, [], pa.Table.from_pylist([no_label]))
    assert out.main.num_rows == 0 and out.summary["reasons"] == {sample_mod.NO_CONSENSUS: 1}


def test_limit_takes_a_subset_independent_of_row_order(scripted):
    cfg = SampleConfig(k=1, temperature=0, min_reward=0, limit=3, checks=CHECKS)
    rows = [row(f"d{i}", f"Marin works for Zentek {i}.", MARIN) for i in range(8)]
    chosen = {d.row["id"] for d in sample_mod.select(cfg, pa.Table.from_pylist(rows, schema=EXAMPLES), None)[0]}
    again = {d.row["id"] for d in sample_mod.select(cfg, pa.Table.from_pylist(rows[::-1], schema=EXAMPLES), None)[0]}
    assert len(chosen) == 3 and chosen == again


def test_sft_trains_on_the_teacher_data_plus_the_samples():
    teacher = pa.Table.from_pylist([row("a", "Marin works for Zentek.", MARIN)], schema=EXAMPLES)
    samples = pa.Table.from_pylist([{**row("a", "Marin works for Zentek.", MARIN), "id": "a~s1"}], schema=EXAMPLES)
    both = with_samples(teacher, samples)
    assert both.column("id").to_pylist() == ["a", "a~s1"] and with_samples(teacher, None) is teacher


# --- whatever the model answers -------------------------------------------------------

NAMES = ["Marin", "Zentek", "Ana", "Lumo", "Oslo"]
TYPES = ["person", "company", "city"]


@st.composite
def answers(draw) -> str | None:
    kind = draw(st.sampled_from(["graph", "graph", "graph", "text", "cut", "error"]))
    if kind == "error":
        return None
    if kind == "text":
        return draw(st.text(max_size=40))
    ents = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(TYPES)), max_size=4))
    names = [e for e, _ in ents] or ["Marin"]
    rels = draw(
        st.lists(
            st.tuples(
                st.sampled_from(names + ["Nobody"]), st.sampled_from(names), st.sampled_from(["works_for", "knows"])
            ),
            max_size=2,
        )
    )
    answer = graph(ents, rels)
    return answer[: draw(st.integers(0, len(answer)))] if kind == "cut" else answer


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    k=st.integers(1, 4),
    min_reward=st.floats(0, 1),
    texts=st.lists(
        st.sampled_from(["Marin works for Zentek in Oslo.", "Ana works for Lumo.", "Nothing here at all."]),
        min_size=1,
        max_size=4,
    ),
    data=st.data(),
)
def test_every_document_and_answer_is_accounted_for(scripted, k, min_reward, texts, data):
    cfg = SampleConfig(k=k, temperature=0.8, min_reward=min_reward, checks=CHECKS)
    examples = [row(f"d{i}", f"{t} Doc {i}.", MARIN if i % 2 else ANA) for i, t in enumerate(texts)]  # one prompt each
    scripted["answers"] = data.draw(st.lists(answers(), min_size=k * len(texts), max_size=k * len(texts)))
    result = run(cfg, examples)
    s = result.summary
    assert s["documents"] == len(texts) == s["accepted"] + s["rejected"]
    assert counts.balance(s, result.main.num_rows) == 0
    assert result.side["rejected"].num_rows == k * len(texts) - s["accepted"]
    assert sum(s["verdicts"].values()) == k * len(texts) and s["verdicts"].get(sample_mod.ACCEPTED, 0) == s["accepted"]
    labels = {r["id"]: r for r in examples}
    for kept in result.main.to_pylist():
        check({**kept, "error": "", "gold": None}, CHECKS)  # grounded, requested types, bounds
        doc = sample_mod.Doc(labels[kept["doc_id"]], labels[kept["doc_id"]]["graph"], False)
        (reward,) = sample_mod.score(cfg, [kept["target"]], doc.label, doc)
        assert reward >= min_reward
    for rej in result.side["rejected"].to_pylist():
        assert rej["verdict"] in {
            sample_mod.NOT_BEST,
            sample_mod.BELOW,
            sample_mod.NO_GRAPH,
            sample_mod.GENERATION_ERROR,
        } or rej["verdict"].startswith(sample_mod.FAILS)
        if rej["verdict"] == sample_mod.BELOW:
            assert rej["reward"] < min_reward


def test_a_rejected_answer_never_passes_for_a_kept_one():
    # The filter's own check is what refuses an answer: an answer it rejects is never kept.
    doc = sample_mod.Doc(row("a", "Marin works for Zentek in Oslo.", MARIN), MARIN, False)
    bad = llm.Result(text=graph([("Marin", "person"), ("Bob", "person")]), finish_reason="stop")
    verdict, parsed, _ = sample_mod.screen(bad, doc, CHECKS)
    assert verdict == "fails the filter: ungrounded entity" and parsed is not None
    with pytest.raises(Rejected):
        check({**doc.row, "graph": parsed.to_json(), "error": ""}, CHECKS)
