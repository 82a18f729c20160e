"""End to end as a service: `t2g stack up` (a real Prefect server on a free port with a fresh
PREFECT_HOME, the process pool, the `gpu` limit, `prefect deploy --all`, a worker), then
`prefect deployment run 't2g-pipeline/full' --watch` on a cut-down tiny recipe, bad input
at submission and at start, and `t2g stack down` stopping every process by PID."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.flowrun import REPO, SMALL, run_t2g
from tests.prefect_server import QUIET


def _prefect(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), *args],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _flow_run_id(output: str) -> str:
    found = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert found, output
    return found[1]


def _client_calls(api_url: str, fn):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return fn(client)


def _logs(api_url: str, flow_run_id: str) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    return "\n".join(log.message for log in _client_calls(api_url, lambda c: c.read_logs(log_filter=flt)))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("stack")
    env = {**QUIET, "PREFECT_API_URL": None, "PREFECT_HOME": None}
    up = run_t2g(["stack", "up", "--home", str(home), "--port", "0", "--no-ui"], home, env, timeout=400)
    state = json.loads((home / "stack.json").read_text()) if (home / "stack.json").exists() else None
    try:
        assert up.returncode == 0, up.output + "\n" + "\n".join(
            p.read_text()[-3000:] for p in (home / "logs").glob("*.log")
        )
        yield {"home": home, "state": state, "env": {**QUIET, "PREFECT_API_URL": state["api_url"], "PREFECT_HOME": str(home / "prefect")}}
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

    # A recipe that does not exist: submitted first, it fails while the good run goes on.
    missing = _prefect(["deployment", "run", "t2g-pipeline/full", "--param", "config=configs/nope.yaml"], env, timeout=120)
    assert missing.returncode == 0, missing.stdout + missing.stderr
    missing_id = _flow_run_id(missing.stdout)

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
    # ... and a recipe that does not exist failed as soon as its run started, saying so.
    deadline = time.time() + 120
    while not (state := _client_calls(api, lambda c: c.read_flow_run(missing_id)).state).is_final() and time.time() < deadline:
        time.sleep(1)
    assert state.is_failed(), state
    assert "recipe configs/nope.yaml does not exist" in _logs(api, missing_id)


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
