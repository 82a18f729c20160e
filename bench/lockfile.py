"""The locked install: constraints/lock.txt pins every package of the CPU install, each
with its hashes, so `make install` (hash-checked) gives every machine the same tree.

    python -m bench.lockfile            # `make lock`: recompile, keeping every pin that still fits
    python -m bench.lockfile --upgrade  # the newest tree the ranges allow (then re-measure figures)
    python -m bench.lockfile --id       # the lock's identity, as figures in bench/results.json name it
    python -m bench.lockfile --install [LOCK]  # `make install`: the lock into this interpreter, hash-checked

The inputs are pyproject.toml's dependencies with the `dev` extra (tests need it) and
constraints/cpu.txt (torch's CPU build, which lies in pip's find-links folder on this kind
of machine, never the multi-GB CUDA build from the index). Recompiling keeps the pins in
the lock as preferences, so adding a dependency to pyproject.toml moves nothing else.

uv compiles, not pip-tools: pip-tools downloads every file of every pinned release to hash
it (10 GB into this tree before it was stopped), uv takes the hashes the index publishes
(seconds). uv does not read pip's configuration, so the find-links folder is passed on.

uv installs too: pip took 60 to 120 s for the lock on 2 cores, uv 30 s, byte-compiling
every module as pip does (6 to 8 s without), so a fresh clone's `make test` and `make demo`
start a minute and a half sooner. pip installs the locked uv first (hash-checked), and it is
the fallback when uv cannot run here.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
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


def pip_setting(name: str) -> list[str]:
    """A pip option as pip would read it (PIP_<NAME>, then the configuration's global.<name>),
    split on whitespace; [] when unset."""
    value = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
    if not value:
        got = subprocess.run([sys.executable, "-m", "pip", "config", "get", f"global.{name}"],
                             capture_output=True, text=True)  # fmt: skip
        value = got.stdout.strip() if got.returncode == 0 else ""
    return value.split()


def find_links() -> list[str]:
    """pip's find-links: where torch's CPU build lies."""
    return pip_setting("find-links")


def index_options() -> list[str]:
    """pip's indexes and find-links as uv options, so uv installs from where pip would."""
    opts = [opt for link in find_links() for opt in ("--find-links", link)]
    opts += [opt for url in pip_setting("index-url")[:1] for opt in ("--index-url", url)]
    opts += [opt for url in pip_setting("extra-index-url") for opt in ("--extra-index-url", url)]
    # pip takes the best match over all indexes; uv by default only the first index that
    # has a package. Every file is hash-checked against the lock, whichever index serves it.
    return opts + ["--index-strategy", "unsafe-best-match"]


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


def lock_block(text: str, name: str) -> str:
    """The lock's lines for one package: its pin and the hash lines that continue it."""
    found = re.search(rf"^{re.escape(name)}==\S+(?: \\\n\s+--hash=\S+)*", text, re.M)
    if found is None:
        raise SystemExit(f"{name} is not in the lock: run `make lock`")
    return found.group(0) + "\n"


def install_commands(python: str, lock: Path, uv: str) -> list[list[str]]:
    """uv's commands that install `lock` (hash-checked) and then the project itself without
    dependencies into `python`'s environment."""
    base = [uv, "pip", "install", "--quiet", "--python", python, *index_options()]
    # Compiled now, as pip does: where PYTHONDONTWRITEBYTECODE is set (CI here), an uncompiled
    # tree recompiles torch's and transformers' modules in every process (the suite's
    # subprocesses: 739 s of pytest against 396).
    deps = base + ["--compile-bytecode", "--require-hashes", "-r", str(lock)]
    return [deps, base + ["--no-deps", "-e", str(REPO)]]


def install(lock: Path = LOCK) -> None:
    """Install the lock into this interpreter's environment with the locked uv, falling back to pip."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as only_uv:
        only_uv.write(lock_block(lock.read_text(), "uv"))
        only_uv.flush()
        subprocess.run([*pip, "--require-hashes", "--no-deps", "-r", only_uv.name], check=True)
    importlib.invalidate_caches()  # uv was installed into this running interpreter's site-packages
    env = dict(os.environ)
    if cert := pip_setting("cert"):  # pip's CA bundle (a proxy's, say): uv reads SSL_CERT_FILE
        env.setdefault("SSL_CERT_FILE", cert[0])
    for cmd in install_commands(sys.executable, lock, uv_bin()):
        if subprocess.run(cmd, env=env).returncode != 0:
            print(f"uv could not install ({' '.join(cmd[:4])} ...); installing with pip", file=sys.stderr)
            subprocess.run([*pip, "--require-hashes", "-r", str(lock)], check=True)
            subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
            return


def main(argv: list[str]) -> int:
    if "--install" in argv:
        rest = argv[argv.index("--install") + 1 :]
        install(Path(rest[0]) if rest else LOCK)
        return 0
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
