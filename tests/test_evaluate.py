"""The evaluate stage: base, SFT and GRPO answer the same held-out prompts greedily; the
report has `t2g eval --json`'s shape plus valid-JSON rate and type conformity."""

from __future__ import annotations

import json

import pytest

from t2g.config import EvaluateConfig
from t2g.stages.evaluate import evaluate, type_conformity
from t2g.training import TrainingError
from tests.trainkit import collect_table, small_tiny_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return small_tiny_model(tmp_path_factory.mktemp("model"))


def test_report_for_base_sft_and_grpo(model, tmp_path):
    docs = collect_table({"seed": 3, "test": 3})
    bench = tmp_path / "bench.jsonl"
    rows = collect_table({"test": 2}).to_pylist()
    bench.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], **json.loads(r["gold"])}) + "\n" for r in rows))
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


def test_constrained_decoding_gives_valid_json(model):
    docs = collect_table({"test": 2})
    cfg = EvaluateConfig(max_new_tokens=200, batch_size=2, constrained=True, models=["sft"])
    report = json.loads(evaluate(cfg, docs, model, model).files["report.json"])
    r = report["models"]["sft"]
    assert r["type_conformity"] in (None, 1.0)  # the schema's enums allow only requested types


def test_no_held_out_documents(model):
    with pytest.raises(TrainingError, match="no gold documents in split 'test'"):
        evaluate(EvaluateConfig(), collect_table({"seed": 2}), model, model)


def test_type_conformity_counts_items():
    recs = [{"entity_types": ["person"], "relation_types": ["works_for"]}]
    preds = [{"entities": [{"text": "a", "type": "person"}, {"text": "b", "type": "date"}],
              "relations": [{"head": "a", "tail": "b", "type": "works_for"}]}]  # fmt: skip
    assert type_conformity(recs, preds) == round(2 / 3, 4)
    assert type_conformity(recs, [{"entities": [], "relations": []}]) is None
