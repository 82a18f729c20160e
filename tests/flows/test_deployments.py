"""deployments/: prefect.yaml read by Prefect's own model, every entrypoint loads and takes
the parameters its deployment sets, the GPU work-pool templates are accepted by a real
server, GPU stages take a strict slot of the `gpu` limit, and the run report renders."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from pathlib import Path

import pytest
import yaml

from t2g.config import dated_store
from t2g.dag import plan
from t2g.kg.config import load_recipe  # a recipe with graph sections too

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"
POOLS = REPO / "deployments" / "work-pools"
TINY = REPO / "configs" / "tiny-gold.yaml"


@pytest.fixture(scope="module")
def spec():
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load(PREFECT_YAML.read_text())
    return raw, PrefectYamlModel.model_validate(raw)


def test_prefect_yaml_names_every_deployment_and_loads_its_flow(spec, monkeypatch):
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    raw, model = spec
    monkeypatch.chdir(REPO)  # `prefect deploy` runs from the repository root
    names = {}
    for d in model.deployments:
        flow = load_flow_from_entrypoint(d.entrypoint)
        names[f"{flow.name}/{d.name}"] = d
        schema = parameter_schema(flow).model_dump()
        unknown = set(d.parameters) - set(schema["properties"])
        assert not unknown, f"{d.name}: {unknown} are not parameters of {d.entrypoint}"
        assert d.work_pool.name == "t2g-local" and d.enforce_parameter_schema
        if "config" in d.parameters:
            load_recipe(REPO / d.parameters["config"])
    assert set(names) == {"t2g-pipeline/full", "t2g-data/regenerate", "t2g-train-only/from-data", "t2g-evaluate-only/benchmark",
                          "t2g-graph/build", "t2g-graph/update"}  # fmt: skip
    assert not names["t2g-pipeline/full"].schedules


def test_regeneration_is_nightly_dated_and_never_overlaps(spec):
    raw, model = spec
    regen = next(d for d in model.deployments if d.name == "regenerate")
    (schedule,) = regen.schedules
    assert schedule.cron == "0 2 * * *" and schedule.timezone == "UTC"
    assert regen.concurrency_limit.limit == 1 and regen.concurrency_limit.collision_strategy == "CANCEL_NEW"
    # One shared store (content keys: an unchanged corpus is all hits), a dated run index.
    assert "{date}" not in regen.parameters["store"]
    day = datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.UTC)
    assert dated_store(regen.parameters["index"], day) == "2026-03-01"
    recipe = load_recipe(TINY, store="s3://bucket/t2g/{date}")
    assert re.fullmatch(r"s3://bucket/t2g/\d{4}-\d{2}-\d{2}", recipe.store)


def test_graph_deployments_build_and_update_the_corpus_graph(spec):
    raw, model = spec
    build, update = (next(d for d in model.deployments if d.name == n) for n in ("build", "update"))
    assert not build.schedules
    (schedule,) = update.schedules
    assert schedule.cron == "0 * * * *" and schedule.active
    assert update.concurrency_limit.limit == 1 and update.concurrency_limit.collision_strategy == "CANCEL_NEW"
    for d in (build, update):
        recipe = load_recipe(REPO / d.parameters["config"])
        nodes = [n.name for n in plan(recipe, d.parameters["until"])]
        assert (
            {"corpus", "chunk", "graph-extract", "resolve"} <= set(nodes)
            and nodes[-1] == "export"
            and "evaluate" not in nodes
        )


def test_pull_step_starts_runs_where_prefect_deploy_ran(spec):
    raw, _ = spec
    (build,) = raw["build"]
    step = build["prefect.deployments.steps.run_shell_script"]
    assert step["script"] == "pwd"
    (pull,) = raw["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == f"{{{{ {step['id']}.stdout }}}}"


def _placeholders(node) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(map(_placeholders, node.values())), set())
    if isinstance(node, list):
        return set().union(*(map(_placeholders, node)), set())
    return set(re.findall(r"\{\{\s*([\w.]+)\s*\}\}", node)) if isinstance(node, str) else set()


@pytest.mark.parametrize("name", ["kubernetes-gpu.json", "docker-gpu.json"])
def test_gpu_pool_templates_declare_every_variable(name):
    template = json.loads((POOLS / name).read_text())
    used = _placeholders(template["job_configuration"])
    declared = set(template["variables"]["properties"])
    assert used <= declared, f"undeclared: {used - declared}"


def test_kubernetes_template_asks_for_gpus_and_tolerates_gpu_nodes():
    template = json.loads((POOLS / "kubernetes-gpu.json").read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    props = template["variables"]["properties"]
    assert props["gpu_count"]["default"] == 1 and props["tolerations"]["default"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]


def test_docker_template_device_request_is_one_docker_py_accepts():
    import docker.types

    template = json.loads((POOLS / "docker-gpu.json").read_text())
    kwargs = template["variables"]["properties"]["container_create_kwargs"]["default"]
    host = docker.types.HostConfig(
        version="1.44", device_requests=kwargs["device_requests"], shm_size=kwargs["shm_size"]
    )
    assert host["DeviceRequests"][0]["Driver"] == "nvidia" and host["DeviceRequests"][0]["Count"] == -1


def _client(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Ctx:
        def __enter__(self):
            self.settings = temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url})
            self.settings.__enter__()
            self.client = get_client(sync_client=True).__enter__()
            return self.client

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return _Ctx()


def test_server_accepts_the_gpu_pool_templates_and_gpu_stages_hold_a_strict_slot(prefect_server):
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    from tasks.gpu import gpu_slot, stage_tags

    suffix = uuid.uuid4().hex[:8]
    with _client(prefect_server) as client:
        for kind, name in (("kubernetes", "kubernetes-gpu.json"), ("docker", "docker-gpu.json")):
            template = json.loads((POOLS / name).read_text())
            client.create_work_pool(WorkPoolCreate(name=f"t2g-{kind}-{suffix}", type=kind, base_job_template=template))
        pools = client.read_work_pools(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[f"t2g-kubernetes-{suffix}"]))
        )
        assert "nvidia.com/gpu" in json.dumps(pools[0].base_job_template)

        limit = f"gpu-{suffix}"
        recipe = load_recipe(TINY, overrides=[f"orchestration.gpu_limit={limit}", "orchestration.gpu_stages=[reason]"])
        assert "gpu" in stage_tags(recipe, "reason") and "gpu" not in stage_tags(recipe, "filter")
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
            with gpu_slot(recipe, "filter"):  # not a GPU stage: no limit needed
                pass
            with pytest.raises(Exception) as refused:  # strict: no limit, no run
                with gpu_slot(recipe, "reason"):
                    pass
            assert type(refused.value).__name__ == "ConcurrencySlotAcquisitionError" and limit in str(refused.value)
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit, limit=1))
            with gpu_slot(recipe, "reason"):
                assert client.read_global_concurrency_limit_by_name(limit).active_slots == 1
            assert client.read_global_concurrency_limit_by_name(limit).active_slots == 0


def test_run_report_lists_inputs_artifacts_drops_f1_and_plots():
    from flows.report import render

    recipe = load_recipe(TINY, store="file:///tmp/store")
    refs = {
        "filter": {"uri": "file:///tmp/store/filter/k1", "stage": "filter", "key": "k1", "rows": 90, "hit": False},
        "grpo": {"uri": "file:///tmp/store/grpo/k2", "stage": "grpo", "key": "k2", "rows": 0, "hit": True},
        "evaluate": {
            "uri": "file:///tmp/store/evaluate/k3",
            "stage": "evaluate",
            "key": "k3",
            "rows": 40,
            "hit": False,
        },
    }
    table = [
        {
            "model": "sft",
            "entity_f1": 0.5,
            "relation_f1": 0.25,
            "valid_json_rate": 1.0,
            "type_conformity": None,
            "examples": 20,
        }
    ]
    manifests = {
        "filter": {"summary": {"rows_in": 100, "reasons": {"ungrounded entity": 7, "too many entities": 3}}},
        "grpo": {"files": {"rewards.png": "digest"}},
        "evaluate": {"summary": {"table": table}},
    }
    md = render(recipe, refs, "configs/tiny-gold.yaml", ["filter.max_entities=10"], manifests)
    assert "# t2g run: tiny-gold" in md and "`configs/tiny-gold.yaml`" in md and "`filter.max_entities=10`" in md
    assert "| filter | 100 | 90 | 10 | ran | `file:///tmp/store/filter/k1` |" in md
    assert "| filter | ungrounded entity | 7 |" in md
    assert "| model | entity_f1 | relation_f1 | valid_json_rate |" in md and "| sft | 0.500 | 0.250 | 1.000 |" in md
    assert "[rewards.png](file:///tmp/store/grpo/k2/rewards.png)" in md
    assert "Teacher labels" not in md  # gold labels: nothing to score
    assert "Repaired instead of dropped" not in md
    repaired = {
        **manifests,
        "filter": {"summary": {**manifests["filter"]["summary"], "repaired": {"ungrounded entity removed": 5}}},
    }
    md = render(recipe, refs, "configs/tiny-gold.yaml", [], repaired)
    assert "### Repaired instead of dropped" in md and "| filter | ungrounded entity removed | 5 |" in md

    vs_gold = {
        "pool": {"documents": 10, "entities": {"tp": 6, "fp": 2, "fn": 4}, "relations": {"tp": 1, "fp": 1, "fn": 3}}
    }
    md = render(recipe, refs, "configs/tiny-gold.yaml", [], {**manifests, "extract": {"summary": {"vs_gold": vs_gold}}})
    assert "### Teacher labels against the documents' gold" in md
    assert "| pool | 10 | 0.750 | 0.600 | 0.667 | 0.500 | 0.250 | 0.333 |" in md


def test_closing_report_says_how_good_the_teachers_labels_were_and_what_the_filter_dropped(tmp_path):
    import pyarrow as pa

    from flows.report import stage_parts
    from t2g.store import Store

    store = Store(f"file://{tmp_path}")
    recipe = load_recipe(TINY, store=f"file://{tmp_path}")

    def data_lines(store, refs):  # the closing text's first paragraph: extract's and the filter's report hooks
        summaries = {n: store.manifest(r["stage"], r["key"]).get("summary") or {} for n, r in refs.items()}
        return stage_parts(recipe, summaries, {n: r["uri"] for n, r in refs.items()}, "text")["data"]

    vs_gold = {
        "pool": {"documents": 10, "entities": {"tp": 6, "fp": 2, "fn": 4}, "relations": {"tp": 1, "fp": 1, "fn": 3}}
    }
    refs = {
        "extract": store.write("extract", "e1", pa.table({"x": [1]}), meta={"summary": {"vs_gold": vs_gold}}).to_dict(),
        "filter": store.write(
            "filter",
            "f1",
            pa.table({"x": [1]}),
            meta={"summary": {"rows_in": 10, "kept": 4, "reasons": {"dangling relation": 2, "ungrounded entity": 4}}},
        ).to_dict(),
    }
    assert data_lines(store, refs) == [
        "teacher labels, pool (10 documents, against their gold): entity P/R/F1 0.750 / 0.600 / 0.667, relation 0.500 / 0.250 / 0.333",
        "filter kept 4 of 10 labelled documents (dropped: 4 ungrounded entity, 2 dangling relation)",
    ]
    summary = {
        "rows_in": 10,
        "kept": 7,
        "reasons": {"dangling relation": 3},
        "repaired": {"ungrounded entity removed": 4},
    }
    repaired = {
        **refs,
        "filter": store.write("filter", "f2", pa.table({"x": [1]}), meta={"summary": summary}).to_dict(),
    }
    assert data_lines(store, repaired)[1] == (
        "filter kept 7 of 10 labelled documents, 4 of them repaired (ungrounded entity removed: 4) (dropped: 3 dangling relation)"
    )
    gold_labels = {
        "extract": store.write("extract", "e2", pa.table({"x": [1]}), meta={"summary": {"backend": "gold"}}).to_dict()
    }
    assert data_lines(store, {**refs, **gold_labels}) == []


def test_training_and_evaluation_deployments_find_their_inputs_from_one_uri(tmp_path):
    import pyarrow as pa

    from flows.service import artifact_ref, lineage
    from t2g.runner import execute
    from t2g.store import Store

    recipe = load_recipe(TINY, overrides=["collect.sources.0.n=5", "collect.sources.1.n=5", "collect.sources.2.n=5"])
    root = f"file://{tmp_path}"
    store = Store(root)
    collect = execute("collect", recipe.collect, [], store).ref
    extract = execute("extract", recipe.extract, [collect], store).ref
    filtered = execute("filter", recipe.filter, [extract], store).ref
    assert artifact_ref(store, root, filtered.uri) == filtered
    assert set(lineage(store, filtered)) == {"filter", "extract", "collect"}
    assert lineage(store, filtered)["collect"] == collect
    for upstream in ("x", [{"uri": "u"}], {"stage": "collect"}, [7]):  # a manifest edited by hand
        edited = store.write("filter", f"f{len(str(upstream))}", pa.table({"x": [1]}), meta={"upstream": upstream})
        with pytest.raises(ValueError, match=re.escape(f"{edited.uri}: its manifest's upstream is not a list")):
            lineage(store, edited)
    for uri, reason in (
        (f"s3://elsewhere/filter/{filtered.key}", "is not in the recipe's store"),
        (f"{root}/filter/{'0' * len(filtered.key)}", "no finished artifact"),
        (f"{root}/../etc/passwd", "no finished artifact"),
    ):
        with pytest.raises(ValueError, match=reason):
            artifact_ref(store, root, uri)
