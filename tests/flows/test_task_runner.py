"""Sharded CPU stages on the recipe's task runner: filter cut row-wise into shards gives
exactly the unsharded artifact, through `t2g run` on threads (the default) and on a Dask
LocalCluster that the test starts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from t2g import shards as sh
from t2g.config import RecipeError, load_recipe
from t2g.runner import execute
from t2g.store import Store
from tests.support.flowrun import TINY, run_t2g, small_args

SMALL_RECIPE = ["collect.sources.0.n=20", "collect.sources.1.n=30", "collect.sources.2.n=10"]


def test_recipe_chooses_the_task_runner():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.cpu_shards import task_runner

    default = task_runner(load_recipe(TINY))
    assert isinstance(default, ThreadPoolTaskRunner) and default._max_workers == 2
    dask = task_runner(
        load_recipe(TINY, overrides=["orchestration.task_runner=dask", "orchestration.address=tcp://10.0.0.1:8786"])
    )
    assert isinstance(dask, DaskTaskRunner) and dask.address == "tcp://10.0.0.1:8786"
    with pytest.raises(RecipeError, match="orchestration.task_runner"):
        load_recipe(TINY, overrides=["orchestration.task_runner=spark"])


def test_row_wise_shards_merge_into_exactly_the_unsharded_filter_artifact(tmp_path):
    recipe = load_recipe(TINY, overrides=SMALL_RECIPE)
    plain, sharded = Store(f"file://{tmp_path / 'a'}"), Store(f"file://{tmp_path / 'b'}")
    for store in (plain, sharded):
        collect = execute("collect", recipe.collect, [], store).ref
        extract = execute("extract", recipe.extract, [collect], store).ref
    whole = execute("filter", recipe.filter, [extract], plain)
    merged = sh.run_all("filter", recipe.filter, [extract], sharded, size=7)
    assert merged.ref.key == whole.ref.key and merged.ref.rows == whole.ref.rows
    assert sharded.read("filter", merged.ref.key).equals(plain.read("filter", whole.ref.key))
    assert sharded.read("filter-dropped", merged.ref.key).equals(plain.read("filter-dropped", whole.ref.key))
    assert merged.summary["shards"] == len(sh.split(sharded.read("extract", extract.key), 7))  # cut by content
    assert merged.summary["kept"] == whole.summary["kept"] and merged.summary["reasons"] == whole.summary["reasons"]


def _filter_rows(store: Path) -> list[dict]:
    (manifest,) = store.glob("filter/*/_manifest.json")
    return [row for part in sorted(manifest.parent.glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]


def test_filter_shards_run_on_threads_and_on_a_dask_cluster(tmp_path, prefect_server, monkeypatch):
    from distributed import Client, LocalCluster

    size = 25
    threads = run_t2g(
        [*small_args(f"orchestration.filter_shard_size={size}"), "--store", f"file://{tmp_path / 'threads'}"],
        tmp_path, prefect_server.env(), timeout=300,
    )  # fmt: skip
    assert threads.returncode == 0, threads.output
    rows = _filter_rows(tmp_path / "threads")
    (extract,) = Store(f"file://{tmp_path / 'threads'}").artifacts("extract")
    cut = sh.split(Store(f"file://{tmp_path / 'threads'}").read(*extract), size)  # by content
    assert len(list((tmp_path / "threads").glob("filter-shard/*/_manifest.json"))) == len(cut)

    # The shards ran in a subflow of their own, tagged with the recipe like every run of `t2g run`.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}), get_client(sync_client=True) as client:
        tagged = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["t2g", "recipe:tiny-gold"]))
        )
    assert "tiny-gold-filter-shards-threads" in {r.name for r in tagged}

    # The Dask workers report their task runs to the same Prefect server.
    for name, value in prefect_server.env().items():
        monkeypatch.setenv(name, value)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = run_t2g(
            [*small_args(f"orchestration.filter_shard_size={size}", "orchestration.task_runner=dask",
                         f"orchestration.address={cluster.scheduler_address}"),
             "--store", f"file://{tmp_path / 'dask'}"],
            tmp_path, prefect_server.env(), timeout=300,
        )  # fmt: skip
        assert dask.returncode == 0, dask.output
        with Client(cluster.scheduler_address) as client:
            ran = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert any("shard" in prefix for prefix in ran), ran  # the shards ran on the cluster
    assert dask.stages["filter"]["uri"].rsplit("/", 1)[1] == threads.stages["filter"]["uri"].rsplit("/", 1)[1]
    assert json.dumps(_filter_rows(tmp_path / "dask"), sort_keys=True) == json.dumps(rows, sort_keys=True)
