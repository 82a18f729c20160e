"""Cache keys and the store-backed stage runner, without Prefect."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import t2g
from t2g.config import load_recipe
from t2g.runner import execute, stage_key
from t2g.stage import cache_key, code_version, import_closure
from t2g.stages import STAGES
from t2g.store import Store
from tests.support.flowrun import SMALL, TINY


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
        modules = import_closure(STAGES[name].module)
        assert not any(
            m.startswith(("t2g.rewards", "t2g.training", "t2g.stages.sft", "t2g.stages.grpo")) for m in modules
        ), name
        assert "t2g.stages" not in modules  # the registry's wiring is not stage code


def test_a_stage_version_covers_every_module_its_output_depends_on(tmp_path):
    # Derived, not listed by hand: extract's summary scores the teacher with t2g.metrics,
    # which the hand-kept list once left out. Change metrics in a copy of the package:
    # extract's code version moves, filter's too (it imports metrics), the rewards' users
    # not because of it, and collect's closure never reaches the LLM backends.
    assert "t2g.metrics" in import_closure("t2g.stages.extract")
    assert "t2g.llm.openai_backend" not in import_closure("t2g.stages.collect")
    copy = tmp_path / "t2g"
    shutil.copytree(Path(t2g.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    probe = "from t2g.stages import STAGES; print(STAGES['extract'].code_version(), STAGES['reason'].code_version())"

    def versions() -> list[str]:
        out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.split()

    extract, reason = versions()
    assert [extract, reason] == [STAGES["extract"].code_version(), STAGES["reason"].code_version()]
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# a changed metric\n")
    changed_extract, changed_reason = versions()
    assert changed_extract != extract  # extract's key changes with t2g/metrics.py
    assert changed_reason == reason  # reason does not import metrics: its key stays


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
