"""Run the real `t2g` command in a subprocess and read its closing table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The gold-labelled tiny profile: flow tests need no teacher training.
TINY = REPO / "configs" / "tiny-gold.yaml"
# A cut-down tiny recipe: the same stages, fewer documents.
SMALL = [
    "collect.sources.0.n=40",
    "collect.sources.1.n=80",
    "collect.sources.2.n=20",
]
_LINE = re.compile(r"^\s+([\w-]+)\s+(\d+) rows\s+(hit|ran)\s+(\S+)$", re.M)  # later rounds: sft-2


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float

    @property
    def stages(self) -> dict[str, dict]:
        return {m[1]: {"rows": int(m[2]), "hit": m[3] == "hit", "uri": m[4]} for m in _LINE.finditer(self.output)}


def t2g_cmd() -> str:
    return str(Path(sys.executable).with_name("t2g"))


def run_t2g(args: list[str], cwd: Path, env: dict[str, str | None], timeout: float = 600) -> Run:
    """Run `t2g ARGS`; a variable set to None in `env` is removed from the environment."""
    started = time.time()
    merged = {**os.environ, **env}
    proc = subprocess.run(
        [t2g_cmd(), *args],
        cwd=cwd,
        env={k: v for k, v in merged.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, time.time() - started)


def small_args(*extra: str, until: str = "filter") -> list[str]:
    args = ["run", "--config", str(TINY), "--until", until]
    for item in [*SMALL, *extra]:
        args += ["--set", item]
    return args
