"""Shared fixtures. Real services live in plugins: SeaweedFS (S3) in tests/seaweedfs.py,
a Prefect server in tests/prefect_server.py.

- tiny_model_dir: a ~1M-parameter Qwen2 chat model with a BPE trained on toy-world
  documents, saved like a hub checkpoint (built once per session, ~1 s).
"""

from pathlib import Path

import pytest

pytest_plugins = ["tests.seaweedfs", "tests.prefect_server"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Imports inside: transformers costs seconds, and only tests that ask should pay.
    from t2g import tiny, toyworld

    return tiny.build_tiny(tmp_path_factory.mktemp("tiny-model"), toyworld.corpus(2000, seed=0))
