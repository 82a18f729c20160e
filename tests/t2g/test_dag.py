"""The DAG as data: the graph of a recipe comes from the stage registry alone, the walker
runs any sub-graph of it, and a new stage needs one module plus one registry entry."""

from __future__ import annotations

import datetime
import itertools

import pytest

from t2g.config import load_recipe
from t2g.dag import DagError, cached, graph, plan, section
from t2g.runner import execute
from t2g.stages import STAGES, Input, Stage
from t2g.store import Store
from tests.support.flowrun import REPO, SMALL, TINY

DEFAULT = REPO / "configs" / "tiny.yaml"


def stages(nodes) -> list[str]:
    return [n.stage for n in nodes]


def test_the_teacher_is_a_node_only_when_the_recipe_has_one():
    with_teacher = graph(load_recipe(DEFAULT))
    assert list(with_teacher) == ["collect", "teacher", "extract", "filter", "reason", "sft", "grpo", "evaluate"]
    assert dict(with_teacher["extract"].inputs) == {"docs": "collect", "teacher": "teacher"}
    gold = graph(load_recipe(TINY))
    assert "teacher" not in gold and dict(gold["sft"].inputs) == {"reasoned": "reason"}


def test_until_runs_a_stage_and_only_what_it_needs():
    recipe = load_recipe(DEFAULT)
    assert stages(plan(recipe, "extract")) == ["collect", "teacher", "extract"]
    assert stages(plan(recipe, "teacher")) == ["collect", "teacher"]
    assert stages(plan(load_recipe(TINY), "filter")) == ["collect", "extract", "filter"]
    with pytest.raises(DagError, match="until='teacher' is not a stage of this recipe .its recipe section is not set."):
        plan(load_recipe(TINY), "teacher")


def test_train_only_and_evaluate_only_are_sub_graphs_from_given_artifacts():
    recipe = load_recipe(DEFAULT)
    data = {"collect", "teacher", "extract", "filter", "reason"}
    assert stages(plan(recipe, given=data)) == ["sft", "grpo", "evaluate"]
    assert stages(plan(recipe, "sft", given=data)) == ["sft"]
    # An SFT model alone: evaluate runs without the optional GRPO input, and no GRPO is planned for it.
    (only,) = plan(recipe, "evaluate", given=data | {"sft"}, follow_optional=False)
    assert only.stage == "evaluate" and dict(only.inputs) == {"docs": "collect", "sft_model": "sft"}
    # In a whole run the optional input is wired like any other.
    assert "grpo" in stages(plan(recipe, "evaluate"))


def test_shards_and_missing_sections_come_from_the_registry():
    recipe = load_recipe(
        TINY, overrides=["orchestration.filter_shard_size=50", "reason.thinking=true", "reason.model=m"]
    )
    nodes = graph(recipe)
    assert (nodes["filter"].sharding, nodes["filter"].shard_size) == ("rows", 50)
    assert (nodes["reason"].sharding, nodes["reason"].shard_size) == ("llm", recipe.reason.shard_size)
    assert nodes["extract"].sharding is None  # the gold backend calls no model
    with pytest.raises(DagError, match="needs the teacher stage's artifact as 'teacher'.*no `teacher` section"):
        graph(load_recipe(DEFAULT).model_copy(update={"teacher": None}))
    with pytest.raises(DagError, match=r"orchestration.gpu_stages: \['tokenize'\] are not stages"):
        graph(load_recipe(TINY, overrides=["orchestration.gpu_stages=[sft, tokenize]"]))


@pytest.fixture
def extra_stage(monkeypatch):
    """A test registry: the real one plus `wordcount` (tests/support/extra_stage.py) fed by collect."""
    spec = Stage("wordcount", "tests.support.extra_stage:word_counts", None, (Input("docs", "collect"),))
    monkeypatch.setitem(STAGES, "wordcount", spec)
    return spec


def test_an_extra_stage_runs_through_the_runner_walk(tmp_path, extra_stage):
    recipe = load_recipe(TINY, overrides=SMALL)
    nodes = plan(recipe, "wordcount")
    assert stages(nodes) == ["collect", "wordcount"]
    store = Store(f"file://{tmp_path}/store")
    refs = {}
    for node in nodes:
        refs[node.stage] = execute(
            node.stage, section(recipe, node.stage), {p: refs[up].ref for p, up in node.inputs}, store
        )
    assert refs["wordcount"].ref.rows == refs["collect"].ref.rows and refs["wordcount"].summary["words"] > 0
    assert cached(nodes, store) == {s: o.ref for s, o in refs.items()}  # a rerun would be all hits


def test_an_extra_stage_runs_through_the_flow(tmp_path, extra_stage, prefect_api):
    from flows.pipeline import pipeline

    refs = pipeline(config=str(TINY), store=f"file://{tmp_path}/store", overrides=SMALL, until="wordcount")
    assert list(refs) == ["collect", "wordcount"] and refs["wordcount"]["rows"] == refs["collect"]["rows"]
    again = pipeline(config=str(TINY), store=f"file://{tmp_path}/store", overrides=SMALL, until="wordcount")
    assert all(r["hit"] for r in again.values())


def test_a_run_across_midnight_stays_in_the_prefix_of_its_start(tmp_path, monkeypatch, prefect_api):
    # The clock says day 1 at the first look and day 2 ever after: a run that resolved its
    # recipe more than once (per subflow, for the report) would split across two prefixes.
    import t2g.config.store_uri
    from flows.pipeline import pipeline

    days = itertools.chain([datetime.datetime(2026, 1, 1, 23, 59, 59, tzinfo=datetime.UTC)],
                           itertools.repeat(datetime.datetime(2026, 1, 2, 0, 0, 1, tzinfo=datetime.UTC)))  # fmt: skip
    clock = lambda: next(days)  # noqa: E731
    monkeypatch.setattr(t2g.config.store_uri, "utc_now", clock)  # where dated_store reads the clock
    monkeypatch.setattr("flows.pipeline.utc_now", clock)
    refs = pipeline(config=str(TINY), store=f"file://{tmp_path}/{{date}}", overrides=SMALL, until="filter")
    assert list(refs) == ["collect", "extract", "filter"]
    assert all(f"/{tmp_path.name}/2026-01-01/" in r["uri"] for r in refs.values()), refs
    assert not (tmp_path / "2026-01-02").exists()


def test_planning_a_recipe_imports_no_model_library(tmp_path):
    # Keys version every stage's source; reading it must not import it. find_spec imports
    # each parent package, and it put torch and transformers (~10 s) into every process that
    # planned, `t2g dag` and each `t2g run` of a stage that never loads a model included.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from t2g.kg.config import load_recipe\n"
        "from t2g.dag import plan\n"
        f"nodes = plan(load_recipe({str(REPO / 'configs' / 'tiny-graph.yaml')!r}, store={tmp_path.as_uri()!r}))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'vllm') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_stage_module_in_a_namespace_package_is_versioned(tmp_path, monkeypatch):
    # Sources are found on disk, not with find_spec: a package without __init__.py (PEP 420,
    # a user's own stages) must still be found, and a change in it must change the version.
    import sys

    from t2g.stage import _top_spec, code_version

    (tmp_path / "nsstages" / "inner").mkdir(parents=True)
    module = tmp_path / "nsstages" / "inner" / "mine.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nsstages", raising=False)
    _top_spec.cache_clear()
    first = code_version("nsstages.inner.mine")
    module.write_text("X = 2\n")
    assert code_version("nsstages.inner.mine") != first
    _top_spec.cache_clear()
