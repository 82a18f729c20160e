"""The locked install (constraints/lock.txt, bench/lockfile.py): it holds everything
pyproject.toml asks for at versions its ranges allow, every pin carries hashes, torch is
the CPU build, `make install` installs it hash-checked, and the drift check names what a
fresh tree would move. Offline: the lock is read, never recompiled (that asks the index)."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bench import lockfile
from bench.drift import FIGURES, compare
from bench.lockfile import LOCK, lock_id, normalize, pins

REPO = Path(__file__).resolve().parents[2]


def _asked() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_the_lock_holds_every_dependency_and_dev_extra_at_an_allowed_version():
    locked = pins(LOCK.read_text())
    missing = [str(r) for r in _asked() if normalize(r.name) not in locked]
    assert not missing, f"{missing} not in {LOCK.name}: run `make lock`"
    outside = {str(r): locked[normalize(r.name)] for r in _asked()
               if not r.specifier.contains(locked[normalize(r.name)], prereleases=True)}  # fmt: skip
    assert not outside, f"locked versions outside pyproject.toml's ranges {outside}: run `make lock`"


def _blocks(text: str) -> dict[str, str]:
    """name -> the lock's lines for it (the pin and its --hash continuation lines)."""
    return {
        normalize(m.group(1)): m.group(0)
        for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==\S+(?: \\\n\s+--hash=\S+)*", text, re.M)
    }


def test_every_pin_carries_hashes_and_torch_is_the_cpu_build():
    text = LOCK.read_text()
    blocks = _blocks(text)
    assert blocks.keys() == pins(text).keys() and len(blocks) > 100
    unhashed = [n for n, b in blocks.items() if "--hash=sha256:" not in b]
    assert not unhashed, unhashed  # pip --require-hashes refuses the whole lock otherwise
    assert pins(text)["torch"] == "2.13.0+cpu"
    assert blocks["torch"].count("--hash=") == 1  # the CPU wheel alone: no CUDA build can match


def test_make_install_installs_the_lock_hash_checked_and_the_project_without_dependencies(monkeypatch):
    make = (REPO / "Makefile").read_text()
    assert "LOCK  ?= constraints/lock.txt" in make
    assert "$(PY) -m bench.lockfile --install $(LOCK)" in make and "pip check" in make
    monkeypatch.setattr(
        lockfile,
        "pip_setting",
        lambda name: {"find-links": ["/w"], "extra-index-url": ["file:///a", "file:///b"]}.get(name, []),
    )
    deps, project = lockfile.install_commands("/venv/bin/python", LOCK, "uv")
    assert deps[:3] == ["uv", "pip", "install"] and deps[-3:] == ["--require-hashes", "-r", str(LOCK)]
    assert "--compile-bytecode" in deps  # as pip: with PYTHONDONTWRITEBYTECODE, else every process recompiles
    assert project[-3:] == ["--no-deps", "-e", str(REPO)] and "[dev]" not in " ".join(project)
    for cmd in (deps, project):  # where pip would look, every index on an equal footing as pip's
        assert cmd[cmd.index("--python") + 1] == "/venv/bin/python"
        assert " ".join(cmd).count("--extra-index-url file:///") == 2 and "--find-links /w" in " ".join(cmd)
        assert cmd[cmd.index("--index-strategy") + 1] == "unsafe-best-match"


def test_the_uv_that_installs_the_lock_is_the_locked_one_with_its_hashes():
    text = LOCK.read_text()
    block = lockfile.lock_block(text, "uv")
    assert block == _blocks(text)["uv"] + "\n" and block.startswith(f"uv=={pins(text)['uv']} ")
    assert block.count("--hash=sha256:") >= 1 and "uvicorn" not in block
    with pytest.raises(SystemExit, match="not in the lock"):
        lockfile.lock_block(text, "no-such-package")


def test_the_lock_id_is_the_start_of_its_sha256(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("six==1.17.0\n")
    assert lock_id(lock) == hashlib.sha256(b"six==1.17.0\n").hexdigest()[:12]
    assert re.fullmatch(r"[0-9a-f]{12}", lock_id())


@pytest.mark.parametrize(
    ("fresh", "moved", "figures"),
    [
        ({"six": "1.17.0", "transformers": "5.25.0"}, {}, False),
        ({"six": "1.18.0", "transformers": "5.25.0"}, {"six": ["1.17.0", "1.18.0"]}, False),
        ({"six": "1.17.0", "transformers": "5.26.0"}, {"transformers": ["5.25.0", "5.26.0"]}, True),
        ({"transformers": "5.25.0", "networkx": "3.6.1"}, {"six": ["1.17.0", "-"], "networkx": ["-", "3.6.1"]}, False),
    ],
)
def test_drift_names_every_moved_package_and_whether_figures_may_move(fresh, moved, figures):
    got = compare({"six": "1.17.0", "transformers": "5.25.0"}, fresh)
    assert got["moved"] == moved and got["moved_count"] == len(moved)
    assert got["moves_figures"] is figures and set(got["figure_packages_moved"]) <= FIGURES
