"""Recipes: validated before anything runs, errors name the field, --set overrides."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from t2g.config import MAX_DEPTH, MAX_RECIPE_BYTES, RecipeError, apply_override, load_recipe, merge_sections

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
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
    assert (
        recipe.sft.model == "tiny" and recipe.sft.tiny.pretrain_steps > 0 and recipe.sft.max_steps > base.sft.max_steps
    )
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
    assert (
        recipe.sft.tiny.hidden_size == base.sft.tiny.hidden_size and recipe.sft.learning_rate == base.sft.learning_rate
    )
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
    with pytest.raises(RecipeError, match=r"missing.yaml \(extended by .*a.yaml\) does not exist"):
        load_recipe(a)
    a.write_text("extends: [b.yaml]\n")
    with pytest.raises(RecipeError, match="extends must be the path of another recipe file, got a list"):
        load_recipe(a)


def test_a_long_extends_chain_is_refused(tmp_path):
    for i in range(20):
        (tmp_path / f"r{i}.yaml").write_text(f"extends: r{i + 1}.yaml\n" if i < 19 else f"extends: {TINY}\n")
    with pytest.raises(
        RecipeError, match=r"r16.yaml \(extended by .*r15.yaml\): more than 16 files in one extends chain"
    ):
        load_recipe(tmp_path / "r0.yaml")
    assert load_recipe(tmp_path / "r5.yaml").name == "tiny"  # 15 files and tiny.yaml: within the bound


# --- hostile files ------------------------------------------------------------------


DEADLINE_S = 120  # a hang guard, not a timing assertion: loading takes about a second


def load_in_child(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """load_recipe(path) in a child process with 1 GiB of address space and a deadline, so
    that a regression (reading /dev/zero, blocking on a FIFO) fails this test instead of
    hanging or swapping the machine."""
    code = (
        "import sys\n"
        "from t2g.config import RecipeError, load_recipe\n"
        "try:\n    load_recipe(sys.argv[1])\n"
        "except RecipeError as exc:\n    print(exc, file=sys.stderr)\n    sys.exit(2)\n"
    )

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        return subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=DEADLINE_S, preexec_fn=limit_memory)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_recipe({path}) still running after {DEADLINE_S} s: it blocked on a non-regular file")


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


@pytest.mark.parametrize(
    "target, kind",
    [
        (lambda tmp: tmp, "a directory"),
        (lambda tmp: Path("/dev/zero"), "a character device"),  # reading it never ends
        (_fifo, "a FIFO"),  # opening it waits for a writer
    ],
    ids=["directory", "dev-zero", "fifo"],
)
def test_extends_and_the_recipe_path_read_only_regular_files(tmp_path, target, kind):
    path = target(tmp_path)
    variant = tmp_path / "variant.yaml"
    variant.write_text(f"extends: {path}\n")
    for recipe in (variant, path):
        done = load_in_child(recipe, tmp_path)
        assert done.returncode == 2, done.stderr[-2000:]
        error = done.stderr.strip()
        assert f"{path}" in error and f"is {kind}, not a file" in error and len(error.splitlines()) == 1


def test_an_oversized_recipe_is_refused_unread(tmp_path):
    head = f"extends: {TINY}\nname: big\n"
    padding = MAX_RECIPE_BYTES - len(head) - 1
    big = tmp_path / "big.yaml"
    big.write_text(head + "#" * padding + "\n")  # exactly the limit: still a recipe
    assert big.stat().st_size == MAX_RECIPE_BYTES and load_recipe(big).name == "big"
    big.write_text(head + "#" * (padding + 1) + "\n")
    with pytest.raises(RecipeError, match=r"big.yaml is larger than 1 MiB"):
        load_recipe(big)
    (tmp_path / "v.yaml").write_text("extends: big.yaml\n")
    with pytest.raises(RecipeError, match=r"big.yaml \(extended by .*v.yaml\) is larger than 1 MiB"):
        load_recipe(tmp_path / "v.yaml")


SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "text",
    [
        f'name: x\nAWS_SECRET_ACCESS_KEY="{SECRET}"\n  bad: [\n',  # scanner error: yaml quotes the line
        f"name: x\naws_secret_access_key {SECRET}: a: b\n",  # mapping values not allowed here
        f"[default]\naws_secret_access_key = {SECRET}\n[other\n",  # an INI credentials file
        f"token: *{SECRET}\n",  # undefined alias, named in the message
        f"token: !!python/name:{SECRET} x\n",  # unknown tag, named in the message
        f"token: !!int {SECRET}\n",  # int() echoes its input
        f"token: !!timestamp {SECRET}\n",
        f"token: {SECRET}\n\x00\n",  # a character YAML refuses
        f'{SECRET}: "unterminated\n',
    ],
    ids=["scanner", "mapping", "ini", "alias", "tag", "int", "timestamp", "control", "string"],
)
def test_a_file_that_is_not_yaml_is_named_but_never_quoted(tmp_path, text):
    # Named .yaml: any other name is refused unread (tests/t2g/test_recipe_hostile.py); a
    # .yaml file may hold secrets too, and PyYAML's own messages would quote them.
    other = tmp_path / "credentials.yaml"
    other.write_text(text)
    variant = tmp_path / "variant.yaml"
    variant.write_text("extends: credentials.yaml\n")
    for recipe in (variant, other):
        with pytest.raises(RecipeError) as err:
            load_recipe(recipe)
        message = str(err.value)
        assert not any(SECRET[i : i + 8] in message for i in range(len(SECRET) - 7)), message
        assert f"recipe {other}" in message and "is not valid YAML" in message
        assert "line" in message or "character" in message, message


def test_deep_yaml_is_refused_in_one_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\ncollect: " + "[" * 50_000 + "\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(deep)
    assert (
        str(err.value)
        == f"recipe {deep} is not valid YAML: line 2, column {MAX_DEPTH + 9}: nested deeper than 64 levels"
    )
    deep.write_text(f"extends: {TINY}\ndescription: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    with pytest.raises(RecipeError, match="description: Input should be a valid string"):
        load_recipe(deep)  # at the bound the value is read, and then refused by the schema


def test_deep_and_long_overrides_are_refused_naming_the_field():
    with pytest.raises(RecipeError) as err:
        load_recipe(TINY, overrides=["a.b=" + "[" * 50_000])
    assert (
        str(err.value)
        == f"override a.b: value is not valid YAML: line 1, column {MAX_DEPTH + 1}: nested deeper than 64 levels"
    )
    data: dict = {}
    apply_override(data, "a.b=" + "[" * MAX_DEPTH + "]" * MAX_DEPTH)  # the bound itself is fine
    with pytest.raises(RecipeError, match="override a.b: .*nested deeper than 64 levels"):
        apply_override(data, "a.b=" + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(RecipeError, match="17 dotted keys"):
        apply_override({}, "a." * 16 + "b=1")
    with pytest.raises(RecipeError) as err:
        apply_override({}, "a." * 50_000 + "b=1")
    assert len(str(err.value)) < 200


# --- the store URI ------------------------------------------------------------------


@pytest.mark.parametrize(
    "store, why",
    [
        ("file://../../x", "'..' segment"),
        ("file:///tmp/t2g/../../etc", "'..' segment"),
        ("../x", "'..' segment"),
        ("s3://bucket/../x", "'.' or '..' segments"),
        ("s3://bucket/a/./b", "'.' or '..' segments"),
        ("s3:///prefix", "names no bucket"),
        ("gs://bucket/x", "unknown scheme 'gs'"),
        ("http://host/x", "unknown scheme 'http'"),
        ("file:", "file://DIR"),
    ],
)
def test_a_store_outside_its_root_is_refused_at_load(store, why):
    with pytest.raises(RecipeError) as err:
        load_recipe(TINY, store=store)
    assert "  store: " in str(err.value) and why in str(err.value)
    with pytest.raises(RecipeError, match=f"store: .*{why[:8]}"):  # in the file or a --set, the same
        load_recipe(TINY, overrides=[f"store='{store}'"])


@pytest.mark.parametrize(
    "store", ["file://.t2g/store", "file:///tmp/elsewhere", ".t2g/plain", "s3://bucket", "s3://bucket/t2g/run"]
)
def test_stores_inside_their_root_load(store):
    assert load_recipe(TINY, store=store).store == store


def test_a_dated_store_is_checked_with_its_date():
    recipe = load_recipe(TINY, store="s3://bucket/t2g/{date}")
    assert recipe.store.startswith("s3://bucket/t2g/20") and "{date}" not in recipe.store


def test_t2g_run_refuses_an_escaping_store_before_prefect_starts(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / "prefect")}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--config", str(TINY), "--store", "file://../../x"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "store: " in done.stderr and "'..' segment" in done.stderr
    assert not (tmp_path / "prefect").exists()  # Prefect never started


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


dotted_keys = st.lists(
    st.one_of(st.sampled_from(["collect", "sources", "0", "-1", "9", "²", "٣", "--1", "", "n", "filter", "name"]),
              st.text(max_size=6)),
    min_size=1, max_size=20,
).map(".".join)  # fmt: skip
yaml_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["2020-13-01", "!!timestamp x", "!!int x", "!!binary x", "*a", "&a [*a]", "{[1]: 2}", "0x_",
                     "!!python/object:os.system x", "[" * 100, "--- a\n--- b", "\x00", '"\\x"', "!!omap [a]"]),
    st.text(alphabet=st.sampled_from(list("[]{}:,-?&*!|>'\"%@` \n\tab01.")), max_size=40),
)  # fmt: skip
recipes = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["collect", "sources", "n", "0"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["collect", "filter", "name"]), recipes, max_size=3), dotted_keys, yaml_values)
# Found by this test: a field of unprintable characters, cut to 80 and then escaped, came
# out at 400 characters, twice in one message.
@example({}, "collect." * 8 + "0.\U00018d09.00\x1f\U00018cd6\U00018d09.0\x1f\U00012544\U00016b90\U0002ebe1", "&0 [*0]")
def test_apply_override_raises_only_recipe_errors(data, dotted, value):
    try:
        apply_override(data, f"{dotted}={value}")
    except RecipeError as exc:
        assert len(str(exc).splitlines()) == 1 and len(str(exc)) < 400
