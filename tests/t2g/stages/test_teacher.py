"""The teacher bootstrap: a tiny model SFT'd on the gold documents of one split."""

from __future__ import annotations

import json

import pytest

from t2g.config import TeacherConfig
from t2g.graph import parse_completion
from t2g.stages.teacher import teacher, teacher_examples
from t2g.training import TrainingError, load_tokenizer, read_base
from tests.support.trainkit import SMALL_TINY, collect_table


def test_examples_come_from_the_split_and_restrict_gold_to_the_request():
    docs = collect_table({"seed": 4, "pool": 3, "test": 2})
    exs = teacher_examples(docs, "seed")
    assert len(exs) == 4
    seed_rows = [r for r in docs.to_pylist() if r["split"] == "seed"]
    for ex, row in zip(exs, seed_rows):
        graph = parse_completion(ex["completion"][0]["content"]).graph
        assert {e.type for e in graph.entities} <= set(row["entity_types"])
        assert row["text"] in ex["prompt"][1]["content"]
        assert len(graph.entities) == len(
            [e for e in json.loads(row["gold"])["entities"] if e["type"] in row["entity_types"]]
        )


def test_teacher_trains_a_tiny_model(tmp_path):
    cfg = TeacherConfig(max_steps=2, batch_size=4, tiny=SMALL_TINY, logging_steps=1, work_dir=str(tmp_path))
    result = teacher(cfg, collect_table({"seed": 6, "pool": 4}))
    assert result.summary["examples"] == 6 and result.summary["steps"] == 2
    assert read_base(result.model_dir)["model"] == "tiny"
    load_tokenizer(result.model_dir)


def test_no_gold_in_the_split(tmp_path):
    with pytest.raises(TrainingError, match="no gold documents in split 'seed'"):
        teacher(TeacherConfig(work_dir=str(tmp_path)), collect_table({"pool": 3}))
