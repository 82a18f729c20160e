"""The service path: `t2g stack up` (server, pool, limit, deployments, worker), one
`prefect deployment run 't2g-pipeline/full' --watch` of the tiny recipe until filter,
`t2g stack down`. Seconds for each, on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def run() -> dict[str, Any]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **QUIET}
    env.pop("PREFECT_API_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "stack"
        started = time.perf_counter()
        subprocess.run([str(bin_dir / "t2g"), "stack", "up", "--home", str(home), "--port", "0", "--no-ui"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        up_s = time.perf_counter() - started
        try:
            state = json.loads((home / "stack.json").read_text())
            run_env = {**env, "PREFECT_API_URL": state["api_url"], "PREFECT_HOME": str(home / "prefect")}
            started = time.perf_counter()
            subprocess.run(
                [str(bin_dir / "prefect"), "deployment", "run", "t2g-pipeline/full", "--param", "config=configs/tiny.yaml",
                 "--param", "until=filter", "--param", f"store=file://{tmp}/store", "--watch"],
                cwd=REPO, env=run_env, check=True, capture_output=True,
            )  # fmt: skip
            run_s = time.perf_counter() - started
        finally:
            started = time.perf_counter()
            subprocess.run([str(bin_dir / "t2g"), "stack", "down", "--home", str(home)], env=env, check=True, capture_output=True)
            down_s = time.perf_counter() - started
    return {"stack_up_s": round(up_s, 1), "deployment_run_until_filter_s": round(run_s, 1), "stack_down_s": round(down_s, 1)}
