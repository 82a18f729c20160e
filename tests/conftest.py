"""Shared fixtures. Real services live in plugins: SeaweedFS (S3) in tests/support/seaweedfs.py,
a Prefect server in tests/support/prefect_server.py; fakes and builders in tests/support/.

- tiny_model_dir: a ~1M-parameter Qwen2 chat model with a BPE trained on toy-world
  documents, saved like a hub checkpoint (built once per session, ~1 s).
- model: the smaller untrained tiny model of the training, inference and evaluation tests
  (tests/support/trainkit.py), built once per session; tests read it, never change it.
- store: an empty artifact store, once over file:// and once over S3.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# t2g.training.WORK_ROOT_ENV, spelled out: importing t2g.training here would cost every
# test run seconds (tests/repo/test_checkout_guard.py checks the two agree).
WORK_ROOT_ENV = "T2G_WORK_ROOT"

# checkout_guard fails the run when a test leaves a file in the checkout; pytester lets
# tests/repo/test_checkout_guard.py run a session of its own to show that it does.
pytest_plugins = ["tests.support.seaweedfs", "tests.support.prefect_server", "tests.support.checkout_guard", "pytester"]

# Hypothesis keeps no example database (a failure still prints its example and how to
# reproduce it); its other files go to the run's temporary folder (below). On 2 shared
# cores a starved worker can take seconds to draw one example: the too_slow health check
# then fails a property that holds (seen on test_merge_sections_properties under load), so
# it is off; speed is `make bench`'s, never a test's.
settings.register_profile("t2g", database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("t2g")

_TEMP = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """What would otherwise land in the current folder, the checkout, goes to a temporary
    folder of the run: relative training work_dirs (the recipes' default .t2g/work, where
    `make demo` would resume their checkpoints; this covers session fixtures and
    subprocesses, and each test then gets its own, below) and hypothesis's .hypothesis/
    (the constants and unicode tables it caches even without a database)."""
    temp = config.stash[_TEMP] = Path(tempfile.mkdtemp(prefix="t2g-tests-"))
    os.environ[WORK_ROOT_ENV] = str(temp / "work")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(temp / "hypothesis")  # subprocesses
    set_hypothesis_home_dir(temp / "hypothesis")


# The layers whose tests run whole flows, kills and benchmarks in subprocesses: a minute or
# two each. Under xdist they go first, so no worker starts one when the others are done.
HEAVY_FIRST = ("flows", "faults", "bench")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def layer(item: pytest.Item) -> int:
        parts = item.path.relative_to(config.rootpath).parts
        return 0 if len(parts) > 1 and parts[1] in HEAVY_FIRST else 1

    items.sort(key=layer)  # stable: file order within each group


def pytest_unconfigure(config: pytest.Config) -> None:
    if _TEMP in config.stash:
        shutil.rmtree(config.stash[_TEMP], ignore_errors=True)


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

    # Untrained: the backend tests need its greedy answers to end within their token
    # budgets, which they do with this initialisation (the system prompt spelled out, as
    # before it became one token: an extra token reshuffles every random weight).
    return tiny.build_tiny(tmp_path_factory.mktemp("tiny-model"), toyworld.corpus(2000, seed=0), prompt_tokens=False)


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.trainkit import small_tiny_model

    # As tiny_model_dir: an initialisation whose untrained answers end within their budgets.
    return small_tiny_model(tmp_path_factory.mktemp("model"), prompt_tokens=False)


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    from t2g.store import Store

    if request.param == "file":
        return Store(f"file://{tmp_path}/store")
    return Store(request.getfixturevalue("s3_env"))
