"""The evaluate stage: base, SFT and GRPO answer the same held-out prompts greedily; the
report has `t2g eval --json`'s shape plus valid-JSON rate and type conformity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from t2g.config import EvaluateConfig
from t2g.graph import json_schema
from t2g.stages.evaluate import evaluate, held_out, type_conformity
from t2g.training import TrainingError
from tests.support.trainkit import collect_table


def test_report_for_base_sft_and_grpo(model, tmp_path):
    docs = collect_table({"seed": 3, "test": 3})
    bench = tmp_path / "bench.jsonl"
    rows = collect_table({"test": 2}).to_pylist()
    bench.write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"], **json.loads(r["gold"])}) + "\n" for r in rows)
    )
    cfg = EvaluateConfig(max_new_tokens=8, batch_size=2, benchmarks=[str(bench), str(tmp_path / "absent.jsonl")])
    result = evaluate(cfg, docs, model, model)

    report = json.loads(result.files["report.json"])
    assert set(report["models"]) == {"base", "sft", "grpo"}
    for r in report["models"].values():
        assert r["examples"] == 3
        assert {"entities", "relations", "valid_json_rate", "type_conformity", "missing_predictions"} <= set(r)
        assert 0.0 <= r["valid_json_rate"] <= 1.0
    # The base is rebuilt from the saved tokenizer and seed: this untrained model is its own base.
    assert report["models"]["base"] == report["models"]["sft"]
    assert set(report["benchmarks"]["bench"]) == {"base", "sft", "grpo"}
    assert result.summary["skipped_benchmarks"] == [str(tmp_path / "absent.jsonl")]
    preds = result.main.to_pylist()
    assert len(preds) == 3 * (3 + 2) and {p["dataset"] for p in preds} == {"test", "bench"}
    md = result.files["report.md"].decode()
    assert "| grpo |" in md
    # Each model against the one before it; the same weights differ by nothing.
    assert list(report["comparisons"]) == ["sft - base", "grpo - sft"]
    for c in report["comparisons"].values():
        assert c["documents"] == 3
        assert c["relations"] == {"delta": 0.0, "low": 0.0, "high": 0.0}
    assert "- grpo - sft: entity F1 +0.0 (+0.0 to +0.0), relation F1 +0.0 (+0.0 to +0.0) points" in md


def _grammar_matcher(model: Path, schema: dict):
    """A fresh xgrammar matcher for `schema`, compiled as t2g.llm.hf compiles it."""
    import xgrammar as xgr
    from transformers import AutoConfig, AutoTokenizer

    info = xgr.TokenizerInfo.from_huggingface(
        AutoTokenizer.from_pretrained(model), vocab_size=AutoConfig.from_pretrained(model).vocab_size
    )
    compiled = xgr.GrammarCompiler(info).compile_json_schema(
        json.dumps(schema, sort_keys=True), any_whitespace=False, strict_mode=True
    )
    return xgr.GrammarMatcher(compiled)


def test_constrained_decoding_gives_valid_json(model):
    """With `constrained: true` every answer is on the schema's grammar, and every answer
    the model finished is valid, schema-conforming JSON: a valid-JSON rate of exactly 1.0
    over finished answers. (The tiny random model loops inside the relations list on some
    documents and hits max_new_tokens there: those answers are cut, still on the grammar.)
    With `constrained: false` the same model and documents answer otherwise."""
    import jsonschema

    docs = collect_table({"test": 4})
    records = held_out(docs, "test", None)
    runs = {
        c: evaluate(EvaluateConfig(max_new_tokens=200, batch_size=4, constrained=c, models=["sft"]), docs, model, model)
        for c in (True, False)
    }
    answers = {c: {r["id"]: r for r in run.main.to_pylist()} for c, run in runs.items()}
    finished = 0
    for rec in records:
        schema = json_schema(rec["entity_types"], rec["relation_types"])
        row, matcher = answers[True][rec["id"]], _grammar_matcher(model, schema)
        assert matcher.accept_string(row["completion"]), f"off the grammar: {row['completion'][:200]!r}"
        if matcher.is_completed():  # the model closed the JSON document
            finished += 1
            assert row["valid_json"], row
            jsonschema.validate(json.loads(row["completion"]), schema)
    assert finished >= 1, "no constrained answer finished: nothing was checked for validity"
    reports = {c: json.loads(run.files["report.json"]) for c, run in runs.items()}
    assert reports[True]["constrained"] is True and reports[False]["constrained"] is False
    assert reports[True]["models"]["sft"]["type_conformity"] in (
        None,
        1.0,
    )  # the schema's enums allow only requested types
    # The flag is not ignored: free decoding gives other answers and another valid-JSON rate.
    assert all(answers[True][i]["completion"] != answers[False][i]["completion"] for i in answers[True])
    rates = {c: r["models"]["sft"]["valid_json_rate"] for c, r in reports.items()}
    assert rates[True] != rates[False], rates
    print("valid-JSON rate", rates, f"constrained answers finished: {finished} of {len(records)}")


def test_no_held_out_documents(model):
    with pytest.raises(TrainingError, match="no gold documents in split 'test'"):
        evaluate(EvaluateConfig(), collect_table({"seed": 2}), model, model)


def test_type_conformity_counts_items():
    recs = [{"entity_types": ["person"], "relation_types": ["works_for"]}]
    preds = [{"entities": [{"text": "a", "type": "person"}, {"text": "b", "type": "date"}],
              "relations": [{"head": "a", "tail": "b", "type": "works_for"}]}]  # fmt: skip
    assert type_conformity(recs, preds) == round(2 / 3, 4)
    assert type_conformity(recs, [{"entities": [], "relations": []}]) is None


def test_a_student_trained_to_think_is_prompted_to_think_and_scored_on_its_format(model, tmp_path):
    import shutil

    from t2g.inference import LocalGenerator
    from t2g.prompts import THINKING_SUFFIX
    from t2g.stages.evaluate import run_model
    from t2g.training import BASE_FILE

    thinker = tmp_path / "thinker"
    shutil.copytree(model, thinker)
    base = json.loads((thinker / BASE_FILE).read_text())
    (thinker / BASE_FILE).write_text(json.dumps({**base, "thinking": True}))
    docs = collect_table({"seed": 2, "test": 3})
    cfg = EvaluateConfig(max_new_tokens=8, batch_size=3, models=["base", "sft"])
    result = evaluate(cfg, docs, thinker)
    report = json.loads(result.files["report.json"])["models"]
    assert report["sft"]["thinking"] is True and report["base"]["thinking"] is False
    for r in report.values():
        assert 0.0 <= r["format_rate"] <= 1.0 and (r["think_chars"] is None or r["think_chars"] >= 0)
    # The prompt a thinking model gets asks for the thinking (the real model answers it).
    seen = []

    class Recording(LocalGenerator):
        def generate(self, requests):
            seen.extend(r.messages for r in requests)
            return super().generate(requests)

    records = held_out(docs, "test", None)
    run_model(Recording(thinker), records, cfg, thinking=True)
    run_model(Recording(thinker), records, cfg, thinking=False)
    assert len(seen) == 6
    assert all(THINKING_SUFFIX in c[0]["content"] for c in seen[:3])
    assert not any(THINKING_SUFFIX in c[0]["content"] for c in seen[3:])
    assert "| format | think chars |" in result.files["report.md"].decode()
    with pytest.raises(TrainingError, match="no room for <think>"):
        evaluate(EvaluateConfig(max_new_tokens=8, constrained=True, models=["sft"]), docs, thinker)


def test_re_evaluating_the_same_models_on_the_same_texts_asks_nothing(model, tmp_path, monkeypatch):
    """Evaluate generates through the LLM response cache: a second evaluation answers
    every request from it and loads no model, with the same report and completions; the
    cache is content-addressed, so new weights in the same folder are asked again."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from t2g.llm import hf
    from t2g.llm.cache import ResponseCache, use_cache
    from t2g.store import Store

    def scaled(folder, factor):
        lm = AutoModelForCausalLM.from_pretrained(folder)
        with torch.no_grad():
            for p in lm.parameters():
                p.mul_(factor)
        lm.save_pretrained(folder)

    sft, grpo = tmp_path / "sft", tmp_path / "grpo"
    shutil.copytree(model, sft)
    shutil.copytree(model, grpo)
    scaled(grpo, 8.0)  # other weights: other answers (a copy of sft would share its entries)
    docs = collect_table({"seed": 2, "test": 3})
    cfg = EvaluateConfig(max_new_tokens=8, batch_size=2)
    cache = ResponseCache(Store(f"file://{tmp_path / 'cache'}"))
    loads = []
    real_init = hf.TransformersBackend.__init__

    def counting_init(self, model, *args, **kwargs):
        loads.append(model)
        real_init(self, model, *args, **kwargs)

    monkeypatch.setattr(hf.TransformersBackend, "__init__", counting_init)

    def run():
        with use_cache(cache):
            return evaluate(cfg, docs, sft, grpo)

    first = run()
    assert len(loads) == 3 and first.summary["llm"]["cache_misses"] == 9, first.summary["llm"]  # 3 models x 3 documents
    second = run()
    assert len(loads) == 3, "a model was loaded although the cache held every answer"
    assert second.summary["llm"]["cache_hits"] == 9 and second.summary["llm"]["cache_misses"] == 0
    assert second.main.to_pylist() == first.main.to_pylist()
    assert second.files["report.json"] == first.files["report.json"]

    # New weights in the same folder: sft is asked again; the base (rebuilt from the seed,
    # named by its bytes) and grpo are not.
    scaled(sft, 4.0)
    third = run()
    assert third.summary["llm"]["cache_hits"] == 6 and third.summary["llm"]["cache_misses"] == 3, third.summary["llm"]
    assert loads[3:] == [str(sft)]
    assert third.main.to_pylist() != second.main.to_pylist()


def test_without_a_cache_evaluate_says_so(model):
    result = evaluate(EvaluateConfig(max_new_tokens=4, models=["sft"]), collect_table({"test": 2}), model)
    assert result.summary["llm"]["cache_off"] == "no cache configured"
    assert result.summary["llm"]["cache_misses"] == 2
