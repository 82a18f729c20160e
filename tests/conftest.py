"""Shared fixtures. Real services live in plugins: SeaweedFS (S3) in tests/seaweedfs.py,
a Prefect server in tests/prefect_server.py.

- tiny_model_dir: a ~1M-parameter Qwen2 chat model with a BPE trained on toy-world
  documents, saved like a hub checkpoint (built once per session, ~1 s).
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# t2g.training.WORK_ROOT_ENV, spelled out: importing t2g.training here would cost every
# test run seconds (tests/test_checkout_guard.py checks the two agree).
WORK_ROOT_ENV = "T2G_WORK_ROOT"

# checkout_guard fails the run when a test leaves a file in the checkout; pytester lets
# tests/test_checkout_guard.py run a session of its own to show that it does.
pytest_plugins = ["tests.seaweedfs", "tests.prefect_server", "tests.checkout_guard", "pytester"]

# Hypothesis keeps no example database: its default is .hypothesis/ in the current folder,
# the checkout. A failure still prints the example and how to reproduce it.
settings.register_profile("t2g", database=None)
settings.load_profile("t2g")


def pytest_configure(config: pytest.Config) -> None:
    # Relative training work_dirs (the recipes' default .t2g/work) land in a temporary
    # folder, not in the checkout, where `make demo` would resume their checkpoints. This
    # covers session fixtures and subprocesses; each test then gets its own (below).
    config.stash[_WORK_ROOT] = Path(tempfile.mkdtemp(prefix="t2g-work-"))
    os.environ[WORK_ROOT_ENV] = str(config.stash[_WORK_ROOT])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _WORK_ROOT in config.stash:
        shutil.rmtree(config.stash[_WORK_ROOT], ignore_errors=True)


_WORK_ROOT = pytest.StashKey[Path]()


@pytest.fixture(autouse=True)
def _own_work_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test trains in a work folder of its own, as it did when each ran in its own
    tmp_path: checkpoints are named by config and data, so two tests alike would otherwise
    resume each other's."""
    monkeypatch.setenv(WORK_ROOT_ENV, str(tmp_path_factory.mktemp("work")))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Imports inside: transformers costs seconds, and only tests that ask should pay.
    from t2g import tiny, toyworld

    return tiny.build_tiny(tmp_path_factory.mktemp("tiny-model"), toyworld.corpus(2000, seed=0))
