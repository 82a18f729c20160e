"""End to end as a service: `t2g stack up` (a real Prefect server on a free port with a fresh
PREFECT_HOME, the process pool, the `gpu` limit, `prefect deploy --all`, a worker), then
`prefect deployment run 't2g-pipeline/full' --watch` on a cut-down tiny recipe, bad input
at submission and at start, and `t2g stack down` stopping every process by PID.

The stack's API asks for its basic auth string (owner-only file); a deployment's run may not
redirect endpoints, credentials or the store, nor load a file that is not a recipe
(docs/service.md, "Access model")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.flowrun import REPO, SMALL, run_t2g
from tests.support.prefect_server import QUIET


def _prefect(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), *args],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _flow_run_id(output: str) -> str:
    found = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert found, output
    return found[1]


AUTH: dict[str, str] = {}  # api_url -> the stack's auth string, filled by the fixture


def _client_calls(api_url: str, fn):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    settings = {PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: AUTH.get(api_url)}
    with temporary_settings(updates=settings), get_client(sync_client=True) as client:
        return fn(client)


def _logs(api_url: str, flow_run_id: str) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    return "\n".join(log.message for log in _client_calls(api_url, lambda c: c.read_logs(log_filter=flt)))


def _final(api_url: str, flow_run_id: str, timeout: float = 120):
    deadline = time.time() + timeout
    while (
        not (state := _client_calls(api_url, lambda c: c.read_flow_run(flow_run_id)).state).is_final()
        and time.time() < deadline
    ):
        time.sleep(1)
    return state


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("stack")
    env = {**QUIET, "PREFECT_API_URL": None, "PREFECT_HOME": None}
    # --no-schedules: the scheduled deployments (nightly regeneration, hourly graph update)
    # would run on this stack's worker, in the checkout, when the module crosses their hour.
    up = run_t2g(["stack", "up", "--home", str(home), "--port", "0", "--no-ui", "--no-schedules"], home, env,
                 timeout=400)  # fmt: skip
    state = json.loads((home / "stack.json").read_text()) if (home / "stack.json").exists() else None
    try:
        assert up.returncode == 0, (
            up.output + "\n" + "\n".join(p.read_text()[-3000:] for p in (home / "logs").glob("*.log"))
        )
        auth = (home / "auth").read_text().strip()
        AUTH[state["api_url"]] = auth
        env = {
            **QUIET,
            "PREFECT_API_URL": state["api_url"],
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_AUTH_STRING": auth,
        }
        assert "schedules paused: " in up.output and "regenerate" in up.output, up.output
        yield {"home": home, "state": state, "env": env, "auth": auth}
    finally:
        down = run_t2g(["stack", "down", "--home", str(home)], home, env, timeout=120)
        assert down.returncode == 0, down.output
        if state:
            from flows.stack import alive

            pids = [state["pids"]["server"], *(state["pids"].get("workers") or {}).values()]
            assert not any(alive(pid) for pid in pids), pids
        assert not (home / "stack.json").exists()


def test_deployed_pipeline_completes_and_bad_input_fails_fast(stack, tmp_path):
    env, api = stack["env"], stack["state"]["api_url"]
    status = run_t2g(["stack", "status", "--home", str(stack["home"]), "--json"], tmp_path, {}, timeout=60)
    assert status.returncode == 0, status.output
    assert json.loads(status.output)["alive"] == {"server": True, "worker t2g-local": True}
    assert json.loads(status.output)["authorized"] is True

    # Submitted first, these fail while the good run goes on: a recipe that does not exist,
    # a file that is not a recipe (its content must not reach the run's log), and an
    # override that would send the worker's credentials to the caller's URL.
    shadow = tmp_path / "shadow.yaml"
    shadow.write_text("root:$6$SHADOWMARKER$x:19000:0:99999:7:::\n")
    evil = [
        "extract.backend=openai",
        "extract.base_url=http://127.0.0.1:9/v1",
        "extract.api_key_env=AWS_SECRET_ACCESS_KEY",
    ]
    bad = {}
    for name, params in (("missing", ["config=configs/nope.yaml"]), ("shadow", [f"config={shadow}"]),
                         ("evil", [f"overrides={json.dumps(evil)}"]), ("store", [f"store=file://{tmp_path / 'not-yours'}"])):  # fmt: skip
        submitted = _prefect(
            ["deployment", "run", "t2g-pipeline/full", *(a for p in params for a in ("--param", p))], env, timeout=120
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        bad[name] = _flow_run_id(submitted.stdout)

    # They fail as soon as they start, saying why, echoing no file.
    for name, flow_run_id in bad.items():
        assert _final(api, flow_run_id).is_failed(), name
    assert "configs/nope.yaml" in _logs(api, bad["missing"])
    shadow_log = _logs(api, bad["shadow"])
    assert "deployment run refused: config" in shadow_log and "SHADOWMARKER" not in shadow_log, shadow_log
    assert "deployment run refused: overrides" in _logs(api, bad["evil"]) and "extract.base_url" in _logs(
        api, bad["evil"]
    )
    assert "deployment run refused: store" in _logs(api, bad["store"])
    assert not (tmp_path / "not-yours").exists()

    # The operator lets this deployment write where the test says (a deployment tag, not a run parameter).
    def allow_store(client):
        from prefect.client.schemas.actions import DeploymentUpdate

        full = client.read_deployment_by_name("t2g-pipeline/full")
        client.update_deployment(full.id, DeploymentUpdate(tags=[*full.tags, "t2g-allow:store"]))

    _client_calls(api, allow_store)
    store = tmp_path / "store"
    run = _prefect(
        ["deployment", "run", "t2g-pipeline/full", "--param", "config=configs/tiny-gold.yaml", "--param", "until=filter",
         "--param", f"store=file://{store}", "--param", f"overrides={json.dumps(SMALL)}", "--watch", "--watch-timeout", "300"],
        env, timeout=360,
    )  # fmt: skip
    assert run.returncode == 0 and "Completed" in run.stdout, run.stdout + run.stderr
    for stage in ("collect", "collect-quarantine", "extract", "filter", "filter-dropped"):
        assert list((store / stage).glob("*/_manifest.json")), f"{stage} artifact missing from {store}"
        assert stage.endswith(("quarantine", "dropped")) or list((store / stage).glob("*/part-*.parquet"))

    # The run report names every artifact the run wrote.
    report = _client_calls(api, lambda c: c.read_latest_artifacts())
    report = next(a for a in report if a.key == "t2g-run-report")
    for stage in ("collect", "extract", "filter"):
        assert str(store / stage) in report.data

    # The nightly regeneration is deployed with its schedule, one shared store with a dated
    # run index, and no overlap.
    regen = _client_calls(api, lambda c: c.read_deployment_by_name("t2g-data/regenerate"))
    assert [s.schedule.cron for s in regen.schedules] == ["0 2 * * *"] and regen.schedules[0].active
    assert regen.paused  # --no-schedules: paused, its schedule kept for `prefect deployment resume`
    assert "{date}" not in regen.parameters["store"] and regen.parameters["index"] == "{date}"
    assert regen.global_concurrency_limit.limit == 1
    assert regen.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert regen.work_pool_name == "t2g-local"
    names = {d.name for d in _client_calls(api, lambda c: c.read_deployments())}
    assert {"full", "regenerate", "from-data", "benchmark"} <= names
    gpu = _client_calls(api, lambda c: c.read_global_concurrency_limit_by_name("gpu"))
    assert gpu.limit == 1

    # Bad input: a parameter the flow does not take is refused at submission ...
    bogus = _prefect(["deployment", "run", "t2g-pipeline/full", "--param", "bogus=1"], env, timeout=120)
    assert bogus.returncode != 0 and "bogus" in bogus.stdout + bogus.stderr


def test_the_api_asks_for_the_stacks_auth_string(stack, tmp_path):
    """Prefect's basic auth is on: the stack's string (owner-only file, the stack's home
    owner-only too) opens the API; no string or a wrong one gets 401; `t2g stack env` hands
    clients what they need; the pools run the locked template."""
    from flows.stack import authorized

    home, api, auth = stack["home"], stack["state"]["api_url"], stack["auth"]
    assert (home / "auth").stat().st_mode & 0o777 == 0o600 and home.stat().st_mode & 0o777 == 0o700
    assert auth not in (home / "stack.json").read_text()
    assert authorized(api, auth) == 200
    assert authorized(api, None) == 401 and authorized(api, "t2g:wrong") == 401 and authorized(api, "t2g") == 401
    without = {k: v for k, v in stack["env"].items() if k != "PREFECT_API_AUTH_STRING"}
    refused = _prefect(
        ["deployment", "run", "t2g-pipeline/full"], {**without, "PREFECT_API_AUTH_STRING": ""}, timeout=120
    )
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and ("401" in said or "Unauthorized" in said), said
    exports = run_t2g(["stack", "env", "--home", str(home)], tmp_path, {}, timeout=60)
    assert exports.returncode == 0 and f"export PREFECT_API_AUTH_STRING={auth}" in exports.output
    assert f"export PREFECT_API_URL={api}" in exports.output
    locked = json.loads((REPO / "deployments" / "work-pools" / "process-locked.json").read_text())
    pool = _client_calls(api, lambda c: c.read_work_pool("t2g-local"))
    assert pool.base_job_template == locked


def test_status_and_down_handle_a_stack_whose_processes_are_gone(tmp_path):
    from flows.stack import down, status

    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    state = {"api_url": "http://127.0.0.1:9/api", "ui_url": "http://127.0.0.1:9", "home": str(tmp_path),
             "pids": {"server": gone.pid, "workers": {"t2g-local": gone.pid}}, "pools": ["t2g-local"], "logs": ""}  # fmt: skip
    (tmp_path / "stack.json").write_text(json.dumps(state))
    info = status(tmp_path)
    assert info["alive"] == {"server": False, "worker t2g-local": False} and not info["healthy"]
    assert down(tmp_path) == [f"worker t2g-local ({gone.pid})", f"server ({gone.pid})"]
    assert not (tmp_path / "stack.json").exists() and status(tmp_path) is None and down(tmp_path) == []
