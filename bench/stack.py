"""The service path: `t2g stack up` (server, pool, limit, deployments, worker), one
`prefect deployment run 't2g-pipeline/full' --watch` of a gold-labelled toy-world recipe
(bench.recipes: the demo's document counts, no model) until filter, `t2g stack down`.
Seconds for each, on this machine. Smoke: the same with a few dozen documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import recipes

REPO = Path(__file__).resolve().parents[1]
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
RECIPE = recipes.gold("bench-stack", seed=200, pool=2000, test=300)
SMOKE = recipes.gold("bench-stack-smoke", seed=20, pool=40)


def _run(args: list[str], **kwargs: Any) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:4])} ... failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        )


def _allow_store(api_url: str, auth: str) -> None:
    """What an operator does to let a deployment write to another store (a tag on the
    deployment: a run's parameters alone may not move it, docs/security.md)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}):
        with get_client(sync_client=True) as client:
            full = client.read_deployment_by_name("t2g-pipeline/full")
            client.update_deployment(full.id, DeploymentUpdate(tags=[*full.tags, "t2g-allow:store"]))


def run(smoke: bool = False) -> dict[str, Any]:
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        # The benchmark's recipe lives outside configs/: the operator declares its folder.
        env = {**os.environ, **QUIET, "T2G_RECIPE_DIRS": tmp}
        env.pop("PREFECT_API_URL", None)
        home = Path(tmp) / "stack"
        config = recipes.write(SMOKE if smoke else RECIPE, Path(tmp))
        started = time.perf_counter()
        # --no-schedules: the hourly graph update would otherwise run in the repository
        # when the benchmark crosses an hour (its recipe's store is relative).
        _run([str(bin_dir / "t2g"), "stack", "up", "--home", str(home), "--port", "0", "--no-ui", "--no-schedules"],
             env=env)  # fmt: skip
        up_s = time.perf_counter() - started
        try:
            state = json.loads((home / "stack.json").read_text())
            auth = (home / "auth").read_text().strip()
            run_env = {
                **env,
                "PREFECT_API_URL": state["api_url"],
                "PREFECT_HOME": str(home / "prefect"),
                "PREFECT_API_AUTH_STRING": auth,
            }
            _allow_store(state["api_url"], auth)
            started = time.perf_counter()
            # An absolute recipe path: the worker runs the flow from the repository root.
            _run(
                [str(bin_dir / "prefect"), "deployment", "run", "t2g-pipeline/full", "--param", f"config={config}",
                 "--param", "until=filter", "--param", f"store=file://{tmp}/store", "--watch"],
                cwd=REPO, env=run_env,
            )  # fmt: skip
            run_s = time.perf_counter() - started
        finally:
            started = time.perf_counter()
            _run([str(bin_dir / "t2g"), "stack", "down", "--home", str(home)], env=env)
            down_s = time.perf_counter() - started
        stored = sorted(p.name for p in (Path(tmp) / "store").iterdir()) if (Path(tmp) / "store").exists() else []
    if "filter" not in stored:  # the figure times the data stages: a run that skipped them times nothing
        raise RuntimeError(f"the deployment run wrote no filter artifact (store has {stored})")
    return {
        "recipe": SMOKE["name"] if smoke else RECIPE["name"],
        "documents": sum(s["n"] for s in (SMOKE if smoke else RECIPE)["collect"]["sources"]),
        "stack_up_s": round(up_s, 1),
        "deployment_run_until_filter_s": round(run_s, 1),
        "stack_down_s": round(down_s, 1),
    }
