"""Recipes: validated before anything runs, errors name the field, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from t2g.config import RecipeError, apply_override, load_recipe

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def test_tiny_recipe_is_valid():
    recipe = load_recipe(TINY)
    assert recipe.name == "tiny" and recipe.collect.sources and recipe.extract.backend == "gold"


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
