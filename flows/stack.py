"""`t2g stack up|down|status`: the embedded stack for a user who wants the Prefect UI locally.

`up` starts a Prefect server on 127.0.0.1 (SQLite under `<home>/prefect`), creates the
recipe's work pools (process type) and the global concurrency limit that GPU stages take a
slot of, registers deployments/prefect.yaml, and starts one worker per pool. Scheduled
regeneration needs a worker on a pool: `serve()` would pause the schedules when it stops.

Each process is started in its own session (`start_new_session=True`): it leads its own
process group, so `down` stops it and everything it spawned (flow-run subprocesses) with
one signal to the group, and SIGTERM reaches it even when `up` ran from a
non-interactive shell (no job control). PIDs are kept in `<home>/stack.json`.

The API asks for Prefect's basic auth (docs/service.md, "Access model"): `up` generates a
fresh string per stack into `<home>/auth` (mode 0600, the home itself 0700: its SQLite
database holds every run's parameters and logs), hands it to the server
(PREFECT_SERVER_API_AUTH_STRING) and to the workers, `prefect deploy` and the setup client
(PREFECT_API_AUTH_STRING). A client of the stack takes it from `t2g stack env`. The work
pools get a base job template that a run cannot use to change the flow-run command or
environment (deployments/work-pools/process-locked.json).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

REPO = Path(__file__).resolve().parents[1]
PREFECT_FILE = "deployments/prefect.yaml"
LOCKED_TEMPLATE = REPO / "deployments" / "work-pools" / "process-locked.json"
AUTH_USER = "t2g"
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}

stack_app = typer.Typer(
    help="The embedded Prefect stack: server, work pool, worker, deployments.", no_args_is_help=True
)


def _prefect() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def state_file(home: Path) -> Path:
    return home / "stack.json"


def read_state(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads(state_file(home).read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True while `pid` is a running Prefect process (a recycled PID of another program is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:  # no /proc (macOS): signal 0 only tells the PID exists
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    return b"prefect" in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def auth_file(home: Path) -> Path:
    return home / "auth"


def new_auth(home: Path) -> str:
    """A fresh `t2g:<random>` string in `<home>/auth`, readable by its owner only (created
    0600, never world-readable for an instant; an older file is replaced, not reopened)."""
    auth = f"{AUTH_USER}:{secrets.token_urlsafe(32)}"
    tmp = auth_file(home).with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(auth + "\n")
    tmp.replace(auth_file(home))
    return auth


def read_auth(home: Path) -> str | None:
    try:
        return auth_file(home.resolve()).read_text().strip() or None
    except OSError:
        return None


def authorized(api_url: str, auth: str | None) -> int:
    """The HTTP status of an API call (reading the server's settings) made with `auth`; 0
    when the server does not answer."""
    request = urllib.request.Request(f"{api_url}/admin/version")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop_group(pid: int, timeout: float = 30) -> None:
    """SIGTERM the process group `pid` leads; SIGKILL it if it is still there after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not alive(pid):
                return
            time.sleep(0.2)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO, start_new_session=True,
        )  # fmt: skip


@contextlib.contextmanager
def _client(api_url: str, auth: str) -> Iterator[Any]:
    """A sync Prefect client of the stack's API, with its auth string (an API key in the
    environment would win over it and get a 401)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

    settings = {PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}
    with (
        temporary_settings(updates=settings, restore_defaults={PREFECT_API_KEY}),
        get_client(sync_client=True) as client,
    ):
        yield client


def _setup(api_url: str, auth: str, pools: list[str], gpu_limit: str, gpu_slots: int) -> None:
    """Create the process work pools (locked template) and the global concurrency limit (idempotent)."""
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
        WorkPoolUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists

    template = json.loads(LOCKED_TEMPLATE.read_text())
    with _client(api_url, auth) as client:
        for name in pools:
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
            except ObjectAlreadyExists:
                client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gpu_limit, limit=gpu_slots))
        except ObjectAlreadyExists:
            client.update_global_concurrency_limit(gpu_limit, GlobalConcurrencyLimitUpdate(limit=gpu_slots))


def _pause_scheduled(api_url: str, auth: str) -> list[str]:
    """Pause every deployment that has a schedule (Prefect deletes its queued runs and keeps
    the schedule, for `prefect deployment resume`); their names."""
    paused = []
    with _client(api_url, auth) as client:
        for deployment in client.read_deployments():
            if deployment.schedules:
                client.pause_deployment(deployment.id)
                paused.append(deployment.name)
    return paused


def up(
    home: Path, port: int, config: Path, ui: bool = True, timeout: float = 240, schedules: bool = True
) -> dict[str, Any]:
    from t2g.kg.config import load_recipe

    recipe = load_recipe(config)  # fails on a bad recipe before anything starts
    orch = recipe.orchestration
    home = home.resolve()
    state = read_state(home)
    if state and alive(state["pids"]["server"]):
        raise RuntimeError(f"the stack is already up ({state['api_url']}); `t2g stack down` first")
    if state:  # a stack whose server died: stop what is left of it (workers) before starting anew
        down(home)
    port = port or _free_port()
    api_url, ui_url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)  # the server's database and logs hold run parameters: owner only
    auth = new_auth(home)
    # The UI asks the server (GET /ui-settings) which API to call; unset, the server
    # answers with the default port 4200, so a UI on any other port shows no data.
    base = {
        **os.environ,
        **QUIET,
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_UI_API_URL": api_url,
        "PREFECT_UI_URL": ui_url,
    }
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING"):
        base.pop(name, None)  # an API key would win over the auth string and get a 401
    server_env = {**base, "PREFECT_SERVER_API_AUTH_STRING": auth}
    client_env = {**base, "PREFECT_API_URL": api_url, "PREFECT_API_AUTH_STRING": auth}
    logs = home / "logs"
    pids: dict[str, Any] = {}
    state = {"api_url": api_url, "ui_url": ui_url, "home": str(home), "pids": pids,
             "pools": sorted({orch.pools.cpu, orch.pools.gpu}), "logs": str(logs),
             "auth_file": str(auth_file(home))}  # fmt: skip

    def save() -> None:
        tmp = state_file(home).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(state_file(home))

    server_args = [_prefect(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = _spawn(server_args + ([] if ui else ["--no-ui"]), server_env, logs / "server.log")
    pids["server"] = server.pid
    save()  # from here on `down` can clean up whatever `up` leaves if it fails
    try:
        deadline = time.time() + timeout
        while not healthy(api_url):
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited {server.returncode}; see {logs / 'server.log'}")
            if time.time() > deadline:
                raise RuntimeError(
                    f"prefect server did not answer on {api_url} in {timeout:.0f} s; see {logs / 'server.log'}"
                )
            time.sleep(0.5)
        _setup(api_url, auth, state["pools"], orch.gpu_limit, orch.gpu_slots)
        # Workers first: they boot while the deployments register. A local server is cheap
        # to poll, so a run starts within seconds of `prefect deployment run`.
        worker_env = {**client_env, "PREFECT_WORKER_QUERY_SECONDS": client_env.get("PREFECT_WORKER_QUERY_SECONDS", "3")}
        pids["workers"] = {}
        for pool in state["pools"]:
            worker = _spawn(
                [_prefect(), "worker", "start", "--pool", pool, "--type", "process"],
                worker_env,
                logs / f"worker-{pool}.log",
            )
            pids["workers"][pool] = worker.pid
        save()
        deployed = subprocess.run(
            [_prefect(), "--no-prompt", "deploy", "--all", "--prefect-file", PREFECT_FILE],
            cwd=REPO, env=client_env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
        )  # fmt: skip
        (logs / "deploy.log").write_text(deployed.stdout + deployed.stderr)
        if deployed.returncode != 0:
            raise RuntimeError(
                f"prefect deploy failed; see {logs / 'deploy.log'}:\n{deployed.stdout[-2000:]}{deployed.stderr[-2000:]}"
            )
        if not schedules:
            state["paused"] = _pause_scheduled(api_url, auth)
            save()
        for pool, pid in pids["workers"].items():
            if not alive(pid):
                raise RuntimeError(f"the worker for {pool} exited; see {logs / f'worker-{pool}.log'}")
    except BaseException:
        down(home)
        raise
    return state


def down(home: Path) -> list[str]:
    """Stop the workers (and their flow runs), then the server; forget the stack."""
    home = home.resolve()
    state = read_state(home)
    if state is None:
        return []
    stopped = []
    for pool, pid in (state["pids"].get("workers") or {}).items():
        stop_group(pid)
        stopped.append(f"worker {pool} ({pid})")
    if state["pids"].get("server"):
        stop_group(state["pids"]["server"])
        stopped.append(f"server ({state['pids']['server']})")
    state_file(home).unlink(missing_ok=True)
    auth_file(home).unlink(missing_ok=True)  # the next stack gets a new one
    return stopped


def status(home: Path) -> dict[str, Any] | None:
    state = read_state(home.resolve())
    if state is None:
        return None
    procs = {
        "server": state["pids"]["server"],
        **{f"worker {p}": pid for p, pid in (state["pids"].get("workers") or {}).items()},
    }
    up = healthy(state["api_url"])
    # Whether the stack's own auth string opens the API (a server without it would answer 200 to anyone).
    code = authorized(state["api_url"], read_auth(home)) if up else 0
    return {**state, "alive": {name: alive(pid) for name, pid in procs.items()}, "healthy": up,
            "authorized": code == 200}  # fmt: skip


_HOME = typer.Option(Path(".t2g"), "--home", help="where the stack keeps its Prefect home, logs and stack.json")


@stack_app.command("up")
def up_cmd(
    home: Path = _HOME,
    port: int = typer.Option(4200, "--port", help="server port on 127.0.0.1 (0: a free one)"),
    config: Path = typer.Option(
        REPO / "configs" / "tiny.yaml", "--config", help="recipe naming the pools and GPU slots"
    ),
    ui: bool = typer.Option(True, "--ui/--no-ui", help="serve the UI"),
    schedules: bool = typer.Option(
        True,
        "--schedules/--no-schedules",
        help="run the scheduled deployments (nightly regeneration, hourly graph update); "
        "--no-schedules deploys them paused (`prefect deployment resume NAME` starts one)",
    ),
) -> None:
    """Start server, work pools, concurrency limit, deployments and workers."""
    try:
        state = up(home, port, config, ui=ui, schedules=schedules)
    except Exception as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"stack up: UI {state['ui_url']}  API {state['api_url']}")
    typer.echo(f"  the API asks for the stack's auth string ({state['auth_file']}, owner only); clients:")
    typer.echo(f'  eval "$(t2g stack env --home {shlex.quote(str(home))})"')
    typer.echo(f"  pools {', '.join(state['pools'])}; logs in {state['logs']}; `t2g stack down` stops it")
    if state.get("paused"):
        typer.echo(f"  schedules paused: {', '.join(state['paused'])}")


@stack_app.command("down")
def down_cmd(home: Path = _HOME) -> None:
    """Stop the workers and the server started by `t2g stack up`."""
    stopped = down(home)
    typer.echo("stopped " + ", ".join(stopped) if stopped else "no stack to stop")


@stack_app.command("status")
def status_cmd(home: Path = _HOME, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show the stack's URLs, whether each process is alive and the auth string opens the API; exit 1 if not."""
    info = status(home)
    if info is None:
        typer.echo("no stack (t2g stack up starts one)")
        raise typer.Exit(3)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        typer.echo(f"UI {info['ui_url']}  API {info['api_url']}  {'healthy' if info['healthy'] else 'NOT ANSWERING'}")
        for name, ok in info["alive"].items():
            typer.echo(f"  {name:<20} {'up' if ok else 'DOWN'}")
        if info["healthy"]:
            typer.echo(
                f"  {'auth':<20} {'ok' if info['authorized'] else 'REFUSED (' + str(info.get('auth_file')) + ')'}"
            )
    if not (info["healthy"] and info["authorized"] and all(info["alive"].values())):
        raise typer.Exit(1)


@stack_app.command("env")
def env_cmd(home: Path = _HOME) -> None:
    """Print the exports a client of the stack needs: eval "$(t2g stack env)"."""
    state, auth = read_state(home.resolve()), read_auth(home)
    if state is None or auth is None:
        typer.echo("no stack (t2g stack up starts one)", err=True)
        raise typer.Exit(3)
    typer.echo(f"export PREFECT_API_URL={shlex.quote(state['api_url'])}")
    typer.echo(f"export PREFECT_API_AUTH_STRING={shlex.quote(auth)}")
    typer.echo("unset PREFECT_API_KEY  # an API key would win over the auth string (401)")


def main(argv: list[str] | None = None) -> None:  # `python -m flows.stack up`
    stack_app(args=argv if argv is not None else sys.argv[1:], prog_name="t2g stack")


if __name__ == "__main__":
    main()
