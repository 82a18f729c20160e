"""Recipes: validated before anything runs, errors name the field, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from t2g.config import RecipeError, apply_override, load_recipe, merge_sections

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
GOLD = TINY.with_name("tiny-gold.yaml")


def test_tiny_recipe_is_the_whole_recipe_with_a_tiny_teacher():
    recipe = load_recipe(TINY)
    assert recipe.name == "tiny" and recipe.collect.sources
    assert recipe.teacher is not None and recipe.teacher.split == "seed"
    assert recipe.extract.backend == "transformers" and recipe.extract.model == "@teacher"
    assert recipe.extract.splits == ["seed", "pool"] and recipe.sft.model == "@teacher"


@pytest.mark.parametrize(
    "override, field",
    [
        ("filter.max_entitiez=3", "filter.max_entitiez"),
        ("filter.max_entities=-1", "filter.max_entities"),
        ("filter.min_entities=30", "filter"),
        ("extract.backend=llama", "extract.backend"),
        ("collect.sources.0.kind=ftp", "collect.sources.0"),
        ("collect.sources.0.n=many", "collect.sources.0.toyworld.n"),
        ("collect.near_duplicate_threshold=2", "collect.near_duplicate_threshold"),
        ("name=../escape", "name"),
        ("surprise=1", "surprise"),
    ],
)
def test_bad_values_fail_naming_the_field(override, field):
    with pytest.raises(RecipeError) as err:
        load_recipe(TINY, overrides=[override])
    assert field in str(err.value) and str(TINY) in str(err.value)


def test_overrides_parse_yaml_values_and_are_validated():
    recipe = load_recipe(
        TINY,
        overrides=[
            "filter.max_entities=7",
            "filter.augment={variants: 0, seed: 3}",
            "collect.sources.1.n=5",
            "extract.entity_types=[person, place]",
        ],
        store="file:///tmp/elsewhere",
    )
    assert recipe.filter.max_entities == 7
    assert recipe.filter.augment.variants == 0 and recipe.filter.augment.seed == 3
    assert recipe.collect.sources[1].n == 5
    assert recipe.extract.entity_types == ["person", "place"]
    assert recipe.store == "file:///tmp/elsewhere"


@pytest.mark.parametrize("bad", ["noequals", "=3", "filter.max_entities=[1", "collect.sources.9.n=1", "name.x=1"])
def test_malformed_overrides_are_refused(bad):
    with pytest.raises(RecipeError):
        load_recipe(TINY, overrides=[bad])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(bad)


def test_duplicate_source_names_are_refused():
    with pytest.raises(RecipeError, match="unique"):
        load_recipe(TINY, overrides=["collect.sources.1.name=toyworld-seed"])


def test_training_on_the_evaluate_split_is_refused():
    with pytest.raises(RecipeError, match=r"train on the evaluate split 'test': set extract.splits .*'pool', 'seed'"):
        load_recipe(TINY, overrides=["extract.splits=null"])
    with pytest.raises(RecipeError, match="evaluate split 'seed'"):
        load_recipe(TINY, overrides=["evaluate.split=seed"])
    assert load_recipe(TINY, overrides=["evaluate.split=dev"]).evaluate.split == "dev"  # no such split: nothing leaks
    with pytest.raises(RecipeError, match="teacher.split is the evaluate split 'test'"):
        load_recipe(TINY, overrides=["teacher={split: test}"])


def test_apply_override_creates_missing_sections():
    data: dict = {}
    apply_override(data, "reason.thinking=true")
    assert data == {"reason": {"thinking": True}}


def test_tiny_gold_recipe_is_tiny_without_the_teacher():
    base, recipe = load_recipe(TINY), load_recipe(GOLD)
    assert recipe.teacher is None and recipe.extract.backend == "gold" and recipe.extract.model is None
    assert recipe.extract.splits == base.extract.splits and recipe.store == base.store  # keys differ: one cache
    assert recipe.sft.model == "tiny" and recipe.sft.tiny.pretrain_steps > 0 and recipe.sft.max_steps > base.sft.max_steps
    same = ("collect", "filter", "reason", "grpo", "evaluate")
    assert all(getattr(recipe, section) == getattr(base, section) for section in same)


def test_the_teacher_as_a_model_needs_a_teacher_section():
    for override in ("sft.model='@teacher'", "extract.model='@teacher'"):
        with pytest.raises(RecipeError, match=r'model is "@teacher" but the recipe has no teacher section'):
            load_recipe(GOLD, overrides=[override])


def test_extends_merges_a_variant_over_its_parent(tmp_path):
    (tmp_path / "sub").mkdir()
    variant = tmp_path / "sub" / "variant.yaml"
    variant.write_text(
        f"extends: {TINY}\nname: variant\nsft: {{max_steps: 5, tiny: {{layers: 2}}}}\n"
        "collect: {sources: [{name: only, kind: toyworld, split: seed, n: 3}]}\n"
    )
    base, recipe = load_recipe(TINY), load_recipe(variant, overrides=["grpo.max_steps=2"])
    assert recipe.name == "variant"
    # mappings merge key by key: untouched keys come from the parent
    assert recipe.sft.max_steps == 5 and recipe.sft.tiny.layers == 2
    assert recipe.sft.tiny.hidden_size == base.sft.tiny.hidden_size and recipe.sft.learning_rate == base.sft.learning_rate
    # a list replaces the parent's list; overrides apply after the merge
    assert [s.name for s in recipe.collect.sources] == ["only"] and recipe.grpo.max_steps == 2
    assert recipe.evaluate == base.evaluate


def test_extends_errors_name_the_file(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(RecipeError, match="leads back to itself"):
        load_recipe(a)
    a.write_text("extends: missing.yaml\n")
    with pytest.raises(RecipeError, match=r"missing.yaml does not exist \(extended by .*a.yaml\)"):
        load_recipe(a)
    a.write_text("extends: [b.yaml]\n")
    with pytest.raises(RecipeError, match="extends must be the path of another recipe file"):
        load_recipe(a)


nested = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)),
    lambda inner: st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8,
)
sections = st.dictionaries(st.sampled_from("abc"), nested, max_size=3)


@given(sections, sections)
def test_merge_sections_properties(base, over):
    before = (repr(base), repr(over))
    merged = merge_sections(base, over)
    assert (repr(base), repr(over)) == before  # inputs untouched
    assert merge_sections(base, {}) == base and merge_sections({}, over) == over
    assert set(merged) == set(base) | set(over)
    for key, value in over.items():
        if not (isinstance(value, dict) and isinstance(base.get(key), dict)):
            assert merged[key] == value  # non-mappings replace
    assert merge_sections(merged, over) == merged  # merging the same variant again changes nothing
