"""The tiny reasoner: bootstrapped on the toy world's rationales, run by the real reason
stage (transformers backend) with that stage's checks and drop table."""

from __future__ import annotations

from pathlib import Path

import pytest

from t2g.config import ReasonConfig, ReasonerConfig, RecipeError, load_recipe
from t2g.dag import graph
from t2g.graph import THINK_CLOSE, THINK_OPEN, parse_completion
from t2g.stages.reason import ReasonError, reason
from t2g.stages.reasoner import reasoner, reasoner_examples
from t2g.training import read_base
from tests.support.trainkit import SMALL_TINY, collect_table, reason_table

REPO = Path(__file__).resolve().parents[3]
THINK = REPO / "configs" / "tiny-think.yaml"


def test_examples_are_the_split_own_request_and_a_variant_with_a_closed_think_block():
    docs = collect_table({"seed": 6, "pool": 3})
    exs, skipped = reasoner_examples(docs, ReasonerConfig(variants=1))
    assert skipped == 0
    seed_rows = [r for r in docs.to_pylist() if r["split"] == "seed"]
    # Own request, plus one sampled one unless it came out the same.
    assert len(seed_rows) <= len(exs) <= 2 * len(seed_rows)
    for ex in exs:
        completion = ex["completion"][0]["content"]
        assert completion.startswith(THINK_OPEN) and completion.endswith(THINK_CLOSE)
        assert "Answer: {" in ex["prompt"][1]["content"]  # the reasoner sees the graph it explains
        assert not any(c in completion for c in '{}"')
    own = reasoner_examples(docs, ReasonerConfig(variants=0))[0]
    assert len(own) == len(seed_rows) and all(e in exs for e in own)


def test_a_reasoner_trains_and_the_reason_stage_runs_it(tmp_path):
    docs = collect_table({"seed": 8, "pool": 6})
    cfg = ReasonerConfig(model="tiny", tiny=SMALL_TINY, max_steps=2, batch_size=4, logging_steps=1, max_length=512,
                         work_dir=str(tmp_path))  # fmt: skip
    trained = reasoner(cfg, docs)
    assert trained.summary["steps"] == 2 and trained.summary["examples"] >= 8
    assert read_base(trained.model_dir)["model"] == "tiny"

    examples = reason_table(6).drop_columns(["think", "target"])
    res = reason(ReasonConfig(thinking=True, model="@reasoner", backend="transformers", device="cpu", max_new_tokens=24,
                              max_think_chars=400), examples, trained.model_dir)  # fmt: skip
    # Two training steps teach nothing: the answers are real rejections, each with its reason.
    dropped = res.side["dropped"]
    assert dropped.num_rows > 0 and res.summary["reasons"]
    assert res.main.num_rows + dropped.num_rows == examples.num_rows == res.summary["rows_in"]
    assert sum(res.summary["reasons"].values()) == dropped.num_rows
    assert set(dropped.column("reason").to_pylist()) <= set(res.summary["reasons"])
    for target in res.main.column("target").to_pylist():
        assert parse_completion(target).format_ok


def test_reason_without_the_reasoner_model_says_what_to_add():
    with pytest.raises(ReasonError, match="add a `reasoner` section"):
        reason(ReasonConfig(thinking=True, model="@reasoner"), reason_table(2).drop_columns(["think", "target"]))


def test_the_reasoner_is_a_node_wired_to_reason_only_when_the_recipe_asks_for_it():
    think = graph(load_recipe(THINK))
    assert think["reasoner"].inputs == (("docs", "collect"), ("teacher", "teacher"))
    assert ("reasoner", "reasoner") in think["reason"].inputs
    plain = graph(load_recipe(REPO / "configs" / "tiny.yaml"))
    assert "reasoner" not in plain and all(up != "reasoner" for up in plain["reason"].upstream)


def test_recipes_that_name_a_missing_reasoner_fail_at_load(tmp_path):
    with pytest.raises(RecipeError, match="no reasoner section"):
        load_recipe(THINK, overrides=["reasoner=null"])
    with pytest.raises(RecipeError, match="reasoner.split is the evaluate split"):
        load_recipe(THINK, overrides=["reasoner.split=test"])
