"""t2g.store and t2g.config are packages of several modules (the house issue, item 5): a
stage's code version must still follow every module its output depends on, whichever
file of the package a function now lives in, and must not follow the ones it does not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import t2g
from t2g.stage import import_closure
from t2g.stages import STAGES

PROBE = "from t2g.stages import STAGES; print(*(STAGES[s].code_version() for s in ('extract', 'collect')))"


def _versions(root: Path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                         capture_output=True, text=True, check=True)  # fmt: skip
    extract, collect = out.stdout.split()
    return {"extract": extract, "collect": collect}


def _touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n# a changed line\n")


def test_the_closures_name_the_modules_the_packages_were_split_into():
    extract = import_closure(STAGES["extract"].module)
    assert {"t2g.config.train_sections", "t2g.config.loading", "t2g.store.digests", "t2g.store.writer"} <= extract
    assert not any(m.startswith("t2g.store") for m in import_closure(STAGES["collect"].module))


def test_a_change_in_a_moved_function_moves_the_key_of_a_stage_that_uses_it(tmp_path):
    # A copy of the package, edited file by file: table_digest (t2g/store/digests.py) and
    # the trl field check (t2g/config/train_sections.py) moved out of t2g/store.py and
    # t2g/config.py; extract reaches both, collect only the config.
    copy = tmp_path / "t2g"
    shutil.copytree(Path(t2g.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _versions(tmp_path)
    _touch(copy / "store" / "digests.py")
    after_store = _versions(tmp_path)
    assert after_store["extract"] != before["extract"]  # extract writes through the store
    assert after_store["collect"] == before["collect"]  # collect never imports the store
    _touch(copy / "config" / "train_sections.py")
    after_config = _versions(tmp_path)
    assert after_config["extract"] != after_store["extract"]  # t2g.config is one package: every file counts
    assert after_config["collect"] != after_store["collect"]
