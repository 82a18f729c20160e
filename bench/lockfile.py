"""The locked install: constraints/lock.txt pins every package of the CPU install, each
with its hashes, so `make install` (pip --require-hashes) gives every machine the same tree.

    python -m bench.lockfile            # `make lock`: recompile, keeping every pin that still fits
    python -m bench.lockfile --upgrade  # the newest tree the ranges allow (then re-measure figures)
    python -m bench.lockfile --id       # the lock's identity, as figures in bench/results.json name it

The inputs are pyproject.toml's dependencies with the `dev` extra (tests need it) and
constraints/cpu.txt (torch's CPU build, which lies in pip's find-links folder on this kind
of machine, never the multi-GB CUDA build from the index). Recompiling keeps the pins in
the lock as preferences, so adding a dependency to pyproject.toml moves nothing else.

uv compiles, not pip-tools: pip-tools downloads every file of every pinned release to hash
it (10 GB into this tree before it was stopped), uv takes the hashes the index publishes
(seconds). uv does not read pip's configuration, so the find-links folder is passed on.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "constraints" / "lock.txt"
CPU = REPO / "constraints" / "cpu.txt"
# The machine the lock is for: this kind of machine's Python (a marker such as redis's
# `python_full_version < "3.11.3"` is decided for it) on x86_64 Linux.
PYTHON = "3.11.7"
PLATFORM = "x86_64-manylinux_2_28"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def normalize(name: str) -> str:
    """PEP 503 names, so `PyYAML` in the lock is `pyyaml` in the installed metadata."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """name -> version of every `name==version` line of a compiled requirements file."""
    return {normalize(m.group(1)): m.group(2) for m in _PIN.finditer(text)}


def lock_id(path: Path = LOCK) -> str:
    """The first 12 hex digits of the lock's sha256: what a figure names as its `lock`."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def uv_bin() -> str:
    """The uv that the lock itself pins (dev extra), else one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise SystemExit("uv not found: `make install` installs it (dev extra), or `pip install uv`") from None
        return found


def find_links() -> list[str]:
    """pip's find-links (environment, then configuration): where torch's CPU build lies."""
    value = os.environ.get("PIP_FIND_LINKS")
    if not value:
        got = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                             capture_output=True, text=True)  # fmt: skip
        value = got.stdout.strip() if got.returncode == 0 else ""
    return value.split()


def compile_command(output: Path, upgrade: bool = False) -> list[str]:
    cmd = [uv_bin(), "pip", "compile", str(REPO / "pyproject.toml"), "--extra", "dev",
           "--constraint", str(CPU.relative_to(REPO)), "--generate-hashes",
           "--python-version", PYTHON, "--python-platform", PLATFORM,
           "--custom-compile-command", "make lock", "--output-file", str(output), "--quiet"]  # fmt: skip
    for link in find_links():
        cmd += ["--find-links", link]
    return cmd + (["--upgrade"] if upgrade else [])


def compile_lock(output: Path = LOCK, upgrade: bool = False) -> None:
    """Write the compiled lock to `output` (its current pins are the preferences)."""
    # cwd: the repository, so the file names the inputs by their relative paths.
    done = subprocess.run(compile_command(output, upgrade), cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"uv pip compile failed ({done.returncode}):\n{done.stderr[-4000:]}")
    text = output.read_text()
    torch = pins(text).get("torch", "")
    if not torch.endswith("+cpu"):
        raise SystemExit(f"the lock pins torch {torch or '(none)'}, not the CPU build: is {CPU} still torch==...+cpu "
                         "and does pip's find-links folder hold that wheel?")  # fmt: skip


def installed_against(path: Path = LOCK) -> dict[str, Any]:
    """`lock`: the lock's id when every package it pins is installed at its version, else
    None with the packages that differ (`lock_differs`: name -> [locked, installed])."""
    differs = {}
    for name, version in sorted(pins(path.read_text()).items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have != version:
            differs[name] = [version, have]
    if not differs:
        return {"lock": lock_id(path)}
    return {"lock": None, "lock_differs": dict(list(differs.items())[:12]), "lock_compared": lock_id(path)}


def main(argv: list[str]) -> int:
    if "--id" in argv:
        print(lock_id())
        return 0
    before = pins(LOCK.read_text()) if LOCK.exists() else {}
    compile_lock(LOCK, upgrade="--upgrade" in argv)
    after = pins(LOCK.read_text())
    for name in sorted(before.keys() | after.keys()):
        if before.get(name) != after.get(name):
            print(f"{name}: {before.get(name, '-')} -> {after.get(name, '-')}")
    print(f"{LOCK.relative_to(REPO)} {lock_id()} ({len(after)} packages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
