"""Tests write only under temporary folders: a pytest plugin (loaded by tests/conftest.py)
that fails the run when files appeared in the checkout while it ran.

Before the session it lists every file under the rootdir (the checkout), after it lists
them again; a new one is a test writing where it should not (training checkpoints in
.t2g/work, a store in .t2g/store, hypothesis's database in .hypothesis/), and a later
`make demo` would find it. Files that only pytest and Python themselves write are left
out (IGNORED). A file already there and changed is not counted: people edit while tests
run. Under xdist only the controller checks, once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Folders pruned from the walk: the repository, virtual environments, and what pytest,
# Python and the installers write by design.
IGNORED = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
_FILES = pytest.StashKey[set]()


def files(root: Path) -> set[str]:
    """Every file under `root`, relative, less the pruned folders."""
    found = set()
    for here, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not _pruned(Path(here) / d)]
        found.update(os.path.relpath(os.path.join(here, n), root) for n in names)
    return found


def _pruned(path: Path) -> bool:
    return path.name in IGNORED or path.name.endswith(".egg-info") or (path / "pyvenv.cfg").exists()


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _controller(session.config):
        session.config.stash[_FILES] = files(session.config.rootpath)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _controller(session.config) or _FILES not in session.config.stash:
        return
    new = sorted(files(session.config.rootpath) - session.config.stash[_FILES])
    if not new:
        return
    shown = "\n".join(f"  {p}" for p in new[:20]) + (f"\n  ... and {len(new) - 20} more" if len(new) > 20 else "")
    message = (f"tests wrote {len(new)} file(s) into the checkout ({session.config.rootpath}); "
               f"write under tmp_path instead:\n{shown}")  # fmt: skip
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
