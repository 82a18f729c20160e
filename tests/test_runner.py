"""Cache keys and the store-backed stage runner, without Prefect."""

from __future__ import annotations

import importlib
import sys

import pytest

from t2g.config import load_recipe
from t2g.runner import execute, stage_key
from t2g.stage import cache_key, code_version
from t2g.stages import STAGES
from t2g.store import Store
from tests.flowrun import SMALL, TINY


def test_code_version_follows_module_source(tmp_path, monkeypatch):
    pkg = tmp_path / "verpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "prompt.py").write_text("PROMPT = 'extract entities'\n")
    (pkg / "other.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    before = code_version("verpkg.prompt")
    whole = code_version("verpkg")
    (pkg / "other.py").write_text("X = 2\n")
    assert code_version("verpkg.prompt") == before  # an unrelated module changed
    assert code_version("verpkg") != whole  # a package versions every module in it
    (pkg / "prompt.py").write_text("PROMPT = 'extract entities and relations'\n")
    assert code_version("verpkg.prompt") != before
    for name in [m for m in sys.modules if m.startswith("verpkg")]:
        monkeypatch.delitem(sys.modules, name)


def test_data_stages_do_not_depend_on_rewards_or_training_code():
    # A change in the rewards or the trainers must never invalidate expensive extraction.
    for name in ("collect", "extract", "filter", "reason"):
        modules = STAGES[name].modules
        assert not any(m.startswith(("t2g.rewards", "t2g.training", "t2g.stages.sft", "t2g.stages.grpo")) for m in modules), name


def test_cache_key_changes_with_each_input():
    base = cache_key("filter", {"a": 1}, ["up"], "code")
    assert base == cache_key("filter", {"a": 1}, ["up"], "code")
    assert len({base, cache_key("extract", {"a": 1}, ["up"], "code"), cache_key("filter", {"a": 2}, ["up"], "code"),
                cache_key("filter", {"a": 1}, ["up2"], "code"), cache_key("filter", {"a": 1}, ["up"], "code2")}) == 5  # fmt: skip


def test_execute_reuses_the_store_and_reruns_only_downstream_of_a_change(tmp_path):
    store = Store(f"file://{tmp_path}/store")
    recipe = load_recipe(TINY, overrides=SMALL)
    collect = execute("collect", recipe.collect, [], store)
    extract = execute("extract", recipe.extract, [collect.ref], store)
    filtered = execute("filter", recipe.filter, [extract.ref], store)
    assert not (collect.hit or extract.hit or filtered.hit)
    assert set(collect.side) == {"quarantine"} and set(filtered.side) == {"dropped"}
    assert filtered.summary["rows_in"] == extract.ref.rows

    again = execute("collect", recipe.collect, [], store)
    assert again.hit and again.ref == collect.ref and again.summary == collect.summary

    changed = load_recipe(TINY, overrides=[*SMALL, "filter.max_entities=3"])
    assert stage_key("extract", changed.extract, [collect.ref]) == extract.ref.key
    refiltered = execute("filter", changed.filter, [extract.ref], store)
    assert not refiltered.hit and refiltered.ref.key != filtered.ref.key
    manifest = store.manifest("filter", refiltered.ref.key)
    assert manifest["upstream"] == [extract.ref.to_dict()] and manifest["config"]["max_entities"] == 3


def test_stage_errors_are_not_hidden(tmp_path):
    store = Store(f"file://{tmp_path}/store")
    recipe = load_recipe(TINY, overrides=[*SMALL, "reason.thinking=true"])
    collect = execute("collect", recipe.collect, [], store)
    with pytest.raises(ValueError, match="reason.thinking=true needs reason.model"):
        execute("reason", recipe.reason, [collect.ref], store)
    assert store.ref("reason", stage_key("reason", recipe.reason, [collect.ref])) is None
