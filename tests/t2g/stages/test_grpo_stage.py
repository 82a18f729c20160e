"""The GRPO stage: a few real trl steps from a tiny student, reward curves as a table
and a PNG, and bad recipes or data failing before any model loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from t2g.config import GrpoConfig, RecipeError, validate_recipe
from t2g.dag import DagError, graph
from t2g.stages.grpo import grpo, grpo_args, grpo_rows, relation_count
from t2g.training import TrainingError, load_model, read_base
from tests.support.trainkit import reason_table

REWARDS = ["format", "json", "f1_entities", "f1_relations", "types"]


def config(work, **kw) -> GrpoConfig:
    base = dict(max_steps=2, batch_size=4, num_generations=2, max_completion_length=12, learning_rate=1e-4,
                logging_steps=1, reward_weights=[0.5, 1, 1, 2, 0.5], work_dir=str(work))  # fmt: skip
    return GrpoConfig(**{**base, **kw})


def test_grpo_trains_and_draws_reward_curves(tmp_path, model):
    result = grpo(config(tmp_path), reason_table(8), model)
    assert result.summary["steps"] == 2
    curves = result.side["rewards"].to_pylist()
    assert {r["reward"] for r in curves} == {*REWARDS, "total"}
    assert sorted({r["step"] for r in curves}) == [1, 2]
    assert all(0.0 <= r["mean"] <= 1.0 for r in curves if r["reward"] != "total")
    assert result.files["rewards.png"].startswith(b"\x89PNG")
    assert read_base(result.model_dir)["model"] == "tiny"  # the base travels on
    load_model(result.model_dir)


def test_min_relations_keeps_only_examples_with_that_many_gold_relations(tmp_path, model):
    table = reason_table(40)
    counts = [relation_count(g) for g in table.column("graph").to_pylist()]
    assert 0 in counts and max(counts) >= 2  # the toy world has both kinds
    kept = grpo_rows(table, min_relations=2)
    assert len(kept) == sum(c >= 2 for c in counts)
    assert all(relation_count(r["solution"]) >= 2 for r in kept)
    assert len(grpo_rows(table, limit=3, min_relations=1)) == 3
    assert relation_count("not json") == relation_count(None) == relation_count('{"entities": []}') == 0
    with pytest.raises(TrainingError, match="lower grpo.min_relations"):
        grpo(config(tmp_path, min_relations=99), table, model)


def test_bad_inputs_fail_before_training(tmp_path, model):
    table = reason_table(4)
    with pytest.raises(TrainingError, match="no gold column 'graph'"):
        grpo(config(tmp_path), table.drop_columns(["graph"]), model)
    with pytest.raises(TrainingError, match="no examples"):
        grpo(config(tmp_path), table.slice(0, 0), model)
    with pytest.raises(TrainingError, match="does not exist"):
        grpo(config(tmp_path), table, tmp_path / "missing-model")


def test_num_generations_must_divide_the_batch():
    with pytest.raises(RecipeError, match="num_generations .3. must divide the generation batch .4."):
        validate_recipe({"name": "x", "collect": {"sources": [{"name": "t", "kind": "toyworld"}]},
                         "grpo": {"batch_size": 4, "num_generations": 3}})  # fmt: skip
    with pytest.raises(RecipeError, match="reward_weights has 1 values for 5 rewards"):
        validate_recipe({"name": "x", "collect": {"sources": [{"name": "t", "kind": "toyworld"}]},
                         "grpo": {"reward_weights": [1.0]}})  # fmt: skip


def test_a_bad_reward_name_fails_when_the_recipe_loads_naming_the_field(tmp_path):
    # Before any stage runs (the graph is built from the recipe first thing, by `t2g run`
    # and every flow): a typo here used to surface only when GRPO started, after
    # extraction and SFT had run.
    recipe = validate_recipe({"name": "x", "collect": {"sources": [{"name": "t", "kind": "toyworld"}]},
                              "grpo": {"rewards": ["json", "f1_entitiez"]}})  # fmt: skip
    with pytest.raises(DagError, match=r"^grpo\.rewards: unknown reward\(s\) \['f1_entitiez'\]"):
        graph(recipe)
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: " + str(Path(__file__).resolve().parents[3] / "configs" / "tiny-gold.yaml") + "\n"
                   "grpo: {rewards: [json, f1_entitiez, f1_relations, types]}\n")  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "t2g", "run", "--config", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2 and "grpo.rewards: unknown reward(s) ['f1_entitiez']" in run.stderr, run.stderr


def test_trainer_fields_pass_through_to_trl_and_are_checked_at_load():
    base = {"name": "x", "collect": {"sources": [{"name": "t", "kind": "toyworld"}]}}
    ok = validate_recipe({**base, "grpo": {"trainer": {"vllm_server_host": "10.0.0.5", "vllm_server_port": 8001}}})
    assert grpo_args(ok.grpo, Path("/tmp/out")).vllm_server_port == 8001
    for bad, why in (({"vllm_server_prot": 1}, "not fields of trl's GRPOConfig"),
                     ({"max_grad_norm": "high"}, "max_grad_norm: 'high' is not a float"),
                     ({"learning_rate": 1.0}, "set by t2g")):  # fmt: skip
        with pytest.raises(RecipeError, match=why):
            validate_recipe({**base, "grpo": {"trainer": bad}})
