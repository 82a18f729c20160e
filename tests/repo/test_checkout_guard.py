"""Tests write only under temporary folders: the guard (tests/support/checkout_guard.py) fails a run
that leaves a file in the checkout, and the suite sends what used to land there (training
work folders, hypothesis's database) to temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from t2g.training import WORK_ROOT_ENV, work_root
from tests.conftest import WORK_ROOT_ENV as CONFTEST_ENV

REPO = Path(__file__).resolve().parents[2]


def test_a_run_that_writes_into_the_checkout_fails_and_names_the_file(pytester: pytest.Pytester):
    pytester.makepyfile(test_writes="""
        from pathlib import Path

        def test_leaves_a_checkpoint(request):
            work = request.config.rootpath / ".t2g" / "work" / "sft"
            work.mkdir(parents=True)
            (work / "model.bin").write_text("x")
    """)  # fmt: skip
    result = pytester.runpytest("-p", "tests.support.checkout_guard")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*tests wrote 1 file(s) into the checkout*", "*.t2g/work/sft/model.bin*"])
    result.assert_outcomes(passed=1)  # the test itself passed: the run fails on the guard


def test_a_run_that_writes_only_under_tmp_path_passes(pytester: pytest.Pytester):
    (pytester.path / "already.txt").write_text("there before the run")
    pytester.makepyfile(test_tmp="""
        def test_writes_in_tmp(tmp_path, request):
            (tmp_path / "model.bin").write_text("x")
            (request.config.rootpath / "already.txt").write_text("changed, not new")
    """)  # fmt: skip
    result = pytester.runpytest("-p", "tests.support.checkout_guard")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_relative_work_dirs_land_in_a_temporary_folder_during_tests():
    assert CONFTEST_ENV == WORK_ROOT_ENV
    root = Path(os.environ[WORK_ROOT_ENV])
    assert not root.resolve().is_relative_to(REPO)
    assert work_root(".t2g/work") == root / ".t2g" / "work"  # the recipes' default
    assert work_root("/abs/work") == Path("/abs/work")  # a path given as absolute is kept


def test_without_the_variable_a_relative_work_dir_is_taken_from_the_current_folder(monkeypatch):
    monkeypatch.delenv(WORK_ROOT_ENV)
    assert work_root(".t2g/work") == Path(".t2g/work")


def test_hypothesis_keeps_nothing_in_the_checkout():
    from hypothesis.configuration import storage_directory

    assert settings().database is None
    assert not storage_directory("constants", intent_to_write=False).path.resolve().is_relative_to(REPO)
