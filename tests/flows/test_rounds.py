"""Rounds (R1: rejection sampling, SFT again, RL again): a recipe's `rounds` expand into
their own nodes (`sample-2`, `sft-2`, `grpo-2`) with their own sections, keys, artifacts
and task runs, through the one registry and the one walker."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from t2g import counts, rounds
from t2g.cli import app
from t2g.config import RecipeError, load_recipe
from t2g.dag import DagError, cached, graph, plan, section
from t2g.llm.cache import open_cache, use_cache
from t2g.runner import config_dict, execute, stage_key
from t2g.stages import STAGES, registered
from t2g.store import ArtifactRef, Store
from tasks.gpu import is_gpu_stage
from tests.flows.test_pipeline_tiny import CUT
from tests.support.flowrun import REPO, TINY

DEFAULT = REPO / "configs" / "tiny.yaml"
TWO = ["rounds=[{sample: {k: 3}, sft: {max_steps: 50}}]"]
THREE = ["rounds=[{sft: {start: previous}}, {sample: {model: sft, dropped: true}}]"]
ROUND_ONE = ["collect", "teacher", "extract", "filter", "reason", "sft", "grpo"]


def names(nodes) -> list[str]:
    return [n.name for n in nodes]


def test_rounds_expand_into_their_own_nodes():
    g = graph(load_recipe(DEFAULT, overrides=THREE))
    assert list(g) == [*ROUND_ONE, "sample-2", "sft-2", "grpo-2", "sample-3", "sft-3", "grpo-3", "evaluate"]
    assert {n: g[n].stage for n in ("sample-2", "sft-3", "grpo-2")} == {
        "sample-2": "sample",
        "sft-3": "sft",
        "grpo-2": "grpo",
    }
    assert dict(g["sample-2"].inputs) == {"examples": "reason", "model": "grpo"}  # the round before's GRPO model
    # Round 2 continues the round before's model (start: previous) and takes its own samples...
    assert dict(g["sft-2"].inputs) == {"reasoned": "reason", "samples": "sample-2", "start": "grpo"}
    assert dict(g["grpo-2"].inputs) == {"reasoned": "reason", "sft_model": "sft-2"}
    # ...round 3 inherits that and samples round 2's SFT model, with the filter's dropped documents too.
    assert dict(g["sample-3"].inputs) == {"examples": "reason", "model": "sft-2", "dropped": "filter"}
    assert dict(g["sft-3"].inputs) == {"reasoned": "reason", "samples": "sample-3", "start": "grpo-2"}
    # Round 1 is the recipe's own: no samples, no model before it; evaluate scores every round's models.
    assert dict(g["sft"].inputs) == {"reasoned": "reason", "teacher": "teacher"}
    assert dict(g["evaluate"].inputs) == {"docs": "collect", "sft_model": "sft", "sft_model_2": "sft-2", "sft_model_3": "sft-3",
                                          "grpo_model": "grpo", "grpo_model_2": "grpo-2", "grpo_model_3": "grpo-3"}  # fmt: skip
    # R1's choice by default: a later round's SFT starts from the base again (here the teacher).
    assert dict(graph(load_recipe(DEFAULT, overrides=TWO))["sft-2"].inputs) == {
        "reasoned": "reason",
        "teacher": "teacher",
        "samples": "sample-2",
    }


def test_a_recipe_without_rounds_has_the_graph_it_had():
    g = graph(load_recipe(DEFAULT))
    assert list(g) == [*ROUND_ONE, "evaluate"] and all(n.name == n.stage for n in g.values())
    assert dict(g["evaluate"].inputs) == {"docs": "collect", "sft_model": "sft", "grpo_model": "grpo"}


@pytest.mark.parametrize(
    "node, after_round_one",
    [
        ("sample-2", ["sample-2"]),
        ("sft-2", ["sample-2", "sft-2"]),
        ("grpo-2", ["sample-2", "sft-2", "grpo-2"]),
        ("sample-3", ["sample-2", "sft-2", "sample-3"]),  # it samples sft-2: grpo-2 is not needed
        ("sft-3", ["sample-2", "sft-2", "grpo-2", "sample-3", "sft-3"]),  # it continues grpo-2
        ("grpo-3", ["sample-2", "sft-2", "grpo-2", "sample-3", "sft-3", "grpo-3"]),
    ],
)
def test_until_runs_each_later_node_and_only_what_it_needs(node, after_round_one):
    assert names(plan(load_recipe(DEFAULT, overrides=THREE), node)) == [*ROUND_ONE, *after_round_one]


def test_until_names_what_is_missing():
    with pytest.raises(DagError, match=r"until='sample' is not a stage of this recipe \(it runs in later rounds only"):
        plan(load_recipe(DEFAULT), "sample")
    with pytest.raises(
        DagError, match=r"until='sft-3' is not a stage .*rounds 1 to 2.*sample-2, sft-2, grpo-2, evaluate"
    ):
        plan(load_recipe(DEFAULT, overrides=TWO), "sft-3")


def test_t2g_dag_shows_the_rounds():
    out = CliRunner().invoke(app, ["dag", "--config", str(DEFAULT), "--until", "grpo-2", "--set", TWO[0]])
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.output.splitlines()}
    assert list(lines)[-3:] == ["sample-2", "sft-2", "grpo-2"]
    assert "samples<-sample-2" in lines["sft-2"] and "(round 2: runs sft)" in lines["sft-2"]


def keys(recipe) -> dict[str, str]:
    """Every node's key, from the recipe alone (upstream keys computed in order)."""
    out: dict[str, str] = {}
    for node in plan(recipe):
        upstream = {p: ArtifactRef(uri=u, stage=u, key=out[u], rows=0) for p, u in node.inputs}
        out[node.name] = stage_key(node.name, section(recipe, node.name), upstream)
    return out


def test_adding_rounds_moves_no_key_of_the_first_round():
    plain, with_rounds = keys(load_recipe(DEFAULT)), keys(load_recipe(DEFAULT, overrides=THREE))
    assert {n: with_rounds[n] for n in ROUND_ONE} == {n: plain[n] for n in ROUND_ONE}
    assert with_rounds["evaluate"] != plain["evaluate"]  # it scores more models
    later = [with_rounds[n] for n in with_rounds if n not in plain]
    assert len(set(later)) == len(later) == 6
    # A section's dump (its key's config) says nothing of rounds when the recipe has none.
    assert "start" not in config_dict(load_recipe(DEFAULT).sft)


def test_tiny_r1_is_the_demo_plus_a_round_that_reuses_its_first():
    r1, demo = load_recipe(REPO / "configs" / "tiny-r1.yaml"), load_recipe(DEFAULT)
    assert names(plan(r1)) == [*ROUND_ONE, "sample-2", "sft-2", "grpo-2", "evaluate"]
    r1_keys, demo_keys = keys(r1), keys(demo)
    assert {n: r1_keys[n] for n in ROUND_ONE} == {n: demo_keys[n] for n in ROUND_ONE}  # a demo store serves round 1
    out = CliRunner().invoke(
        app, ["dag", "--config", str(REPO / "configs" / "tiny-r1.yaml"), "--set", "sample.dropped=true"]
    )
    assert "dropped<-filter-dropped" in out.output  # a side artifact input says so


def test_round_sections_merge_over_the_round_before():
    recipe = load_recipe(
        DEFAULT, overrides=["rounds=[{sample: {k: 3}, sft: {max_steps: 50, start: previous}}, {grpo: {max_steps: 5}}]"]
    )
    assert section(recipe, "sft") is recipe.sft and section(recipe, "sft-2").max_steps == 50
    assert section(recipe, "sft-3").max_steps == 50 and section(recipe, "sft-3").start == "previous"  # inherited
    assert section(recipe, "sft-2").learning_rate == recipe.sft.learning_rate  # untouched fields
    assert (section(recipe, "grpo-2").max_steps, section(recipe, "grpo-3").max_steps) == (recipe.grpo.max_steps, 5)
    assert (
        section(recipe, "sample-3").k == 3 and section(recipe, "sample-2").checks == recipe.filter
    )  # the filter's checks
    assert config_dict(section(recipe, "sft-2"))["start"] == "previous"  # in the key of the node that uses it
    assert registered("sft-2") is STAGES["sft"] and registered("sample-3") is STAGES["sample"]
    with pytest.raises(KeyError):
        registered("collect-2")  # collect runs once


def test_a_bad_round_is_refused_naming_the_field():
    with pytest.raises(RecipeError, match=r"rounds\.0\.sft\.max_steps: Input should be a valid integer"):
        load_recipe(DEFAULT, overrides=["rounds=[{sft: {max_steps: many}}]"])
    with pytest.raises(RecipeError, match=r"rounds\.1\.sample\.k"):
        load_recipe(DEFAULT, overrides=["rounds=[{}, {sample: {k: 0}}]"])
    with pytest.raises(RecipeError, match=r"rounds\.0\.sfx: Extra inputs"):
        load_recipe(DEFAULT, overrides=["rounds=[{sfx: {}}]"])
    with pytest.raises(RecipeError, match=r"sft\.start: .previous. means the round before's model"):
        load_recipe(DEFAULT, overrides=["sft.start=previous"])
    with pytest.raises(DagError, match=r"sample \(round 2\)\.rewards: unknown reward"):
        graph(load_recipe(DEFAULT, overrides=["rounds=[{sample: {rewards: [f1], reward_weights: [1]}}]"]))


FIELDS = st.sampled_from(
    ["max_steps", "learning_rate", "k", "min_reward", "start", "model", "rewards", "limit", "nope"]
)
VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["sample", "sft", "grpo", "evaluate"]),
                                st.dictionaries(FIELDS, VALUES, max_size=3) | VALUES, max_size=3), max_size=3))  # fmt: skip
def test_any_rounds_value_loads_or_is_refused_as_a_recipe_error(value):
    # `rounds` is outside input (a file, a --set): whatever it holds, loading it either
    # gives a recipe whose every round section is valid, or a RecipeError; nothing else.
    try:
        recipe = load_recipe(DEFAULT, overrides=[f"rounds={json.dumps(value)}"])
    except RecipeError:
        return
    for r in range(2, len(recipe.rounds) + 2):
        for name in ("sample", "sft", "grpo"):
            assert recipe.round_section(name, r) is not None


@given(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.integers(1, 10_000))
def test_node_names_read_back(stage, r):
    assert rounds.parse(rounds.node_name(stage, r)) == (stage, r)
    assert rounds.param_round(rounds.round_param(stage, r)) == (stage, r)


def test_a_later_round_holds_its_stages_gpu_slot():
    recipe = load_recipe(DEFAULT, overrides=[*TWO, "orchestration.gpu_stages=[sft, sample]"])
    assert is_gpu_stage(recipe, "sft-2") and is_gpu_stage(recipe, "sample-2") and not is_gpu_stage(recipe, "grpo-2")


# --- a two-round recipe, run ----------------------------------------------------------

ROUNDS = [*CUT, "sample={k: 2, max_new_tokens: 16, limit: 12, min_reward: 0.0, batch_size: 32}",
          "rounds=[{sft: {max_steps: 2}, grpo: {max_steps: 1}}]"]  # fmt: skip


def test_a_two_round_recipe_runs_through_the_runner_and_the_flow(tmp_path, prefect_api):
    """Round 1 through the runner, then the pipeline flow over the same store: it finds
    round 1 by its keys and runs round 2 and the evaluation as their own task runs."""
    from flows.pipeline import pipeline
    from tasks.stage_task import stage_task

    recipe = load_recipe(TINY, overrides=ROUNDS, store=f"file://{tmp_path}/store")
    store = Store(recipe.store)
    refs: dict[str, ArtifactRef] = {}
    with use_cache(open_cache(recipe.store)):
        for node in plan(recipe, "grpo"):
            refs[node.name] = execute(
                node.name, section(recipe, node.name), {p: refs[u] for p, u in node.inputs}, store
            ).ref
    ran = pipeline(config=str(TINY), store=recipe.store, overrides=ROUNDS)
    later = ["sample-2", "sft-2", "grpo-2", "evaluate"]
    assert list(ran) == [*refs, *later]
    assert all(ran[n]["hit"] for n in refs) and not any(ran[n]["hit"] for n in later)
    for n in later:  # their own artifacts, under their own names
        assert ran[n]["stage"] == n and ran[n]["uri"].endswith(f"/{n}/{ran[n]['key']}")

    s = store.manifest("sample-2", ran["sample-2"]["key"])["summary"]
    assert s["documents"] == 12 == s["accepted"] + s["rejected"] and s["samples"] == 24
    assert counts.balance(s, ran["sample-2"]["rows"]) == 0
    sft2 = store.manifest("sft-2", ran["sft-2"]["key"])
    assert sft2["kind"] == "model" and sft2["inputs"] == {
        "reasoned": refs["reason"].key,
        "samples": ran["sample-2"]["key"],
    }
    assert sft2["summary"]["samples"] == ran["sample-2"]["rows"] and sft2["config"]["max_steps"] == 2
    assert store.manifest("grpo-2", ran["grpo-2"]["key"])["inputs"]["sft_model"] == ran["sft-2"]["key"]

    report = json.loads(store.read_file("evaluate", ran["evaluate"]["key"], "report.json"))
    assert list(report["models"]) == ["base", "sft", "grpo", "sft-2", "grpo-2"]
    assert list(report["comparisons"]) == ["sft - base", "grpo - sft", "sft-2 - grpo", "grpo-2 - sft-2"]

    # Keys come from the recipe alone: the walker and the runner agree on every node.
    assert cached(plan(recipe), store) == {n: ArtifactRef.from_dict(r) for n, r in ran.items()}
    # Each later node is its own task (the UI groups runs by task name) and task run.
    assert [stage_task(n).name for n in later] == later
