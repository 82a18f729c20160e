"""`make test` from a clean checkout: the suite's wall time and CPU on this machine (issue 27
asks for 8 minutes on 2 idle cores). It clones HEAD into a temporary folder and runs
`bash .ci/run` there, as CI does, the install included: 10 to 20 minutes, so it is an
experiment (run by name), not part of `make bench`.

    python -m bench suite
    python -m bench --smoke suite   # the clone and one test file, on this interpreter

The wall time belongs to the host as much as to the code (docs/log.md, 2026-12-06: 792 s
of pytest on a 77-GFLOPS host, 435 s on a 190-GFLOPS one): `machine` rides along.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import machine

REPO = Path(__file__).resolve().parents[1]
# pytest's closing line: "922 passed, 1 skipped, 39 warnings in 791.60s (0:13:11)".
_SUMMARY = re.compile(r"^=*\s*(?P<counts>(?:\d+ \w+(?:, )?)+) in (?P<seconds>[\d.]+)s", re.M)


def summary(output: str) -> dict[str, Any]:
    """pytest's counts (passed, failed, skipped, ...) and its own seconds, from its last summary line."""
    found = list(_SUMMARY.finditer(output))
    if not found:
        return {}
    last = found[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last["counts"])}
    return {"counts": counts, "pytest_s": float(last["seconds"])}


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run(smoke: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="t2g-suite-") as tmp:
        clone = Path(tmp) / "checkout"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=clone, capture_output=True, text=True, check=True
        ).stdout.strip()
        host = machine.describe(0.5 if smoke else 2.0)  # before the run, on idle cores
        if smoke:
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/repo/test_layers.py"]
        else:
            command = ["bash", ".ci/run"]
        cpu, started = _children_cpu(), time.perf_counter()
        proc = subprocess.run(command, cwd=clone, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    output = proc.stdout + proc.stderr
    found = summary(output)
    if not found:
        raise RuntimeError(f"{' '.join(command)} printed no pytest summary (exit {proc.returncode}):\n{output[-3000:]}")
    if proc.returncode != 0:  # what failed, in full, on the console (pytest's is stdout); its names in the figures
        print(proc.stdout[-30000:], file=sys.stderr)
    return {
        "commit": commit,
        "command": " ".join(command) if smoke else "bash .ci/run (make install, ruff, make test)",
        "exit": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        **found,
        "failures": re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M),
        "goal_s": 480,
        "meets_goal": proc.returncode == 0 and found["pytest_s"] <= 480,
        "machine": host,
    }
