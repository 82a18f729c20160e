"""A `t2g run` killed with SIGKILL leaves no process behind: Prefect's temporary API
server it started is stopped by the run's watcher (flows/reaper.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flows import reaper

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="the reaper reads /proc")


def _wait(predicate, polls: int = 600, every: float = 0.5) -> bool:
    for _ in range(polls):  # bounded by count: a loaded machine only makes it slower
        if predicate():
            return True
        time.sleep(every)
    return False


_RUN = """
import subprocess, sys, time
from flows import reaper
reaper.guard()  # as t2g run does before Prefect starts its temporary API server
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def _subreaper() -> None:
    """Orphans of this test's children come to this process instead of init, so the test
    watches them itself whatever init does with the orphans it adopts."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        pytest.skip("cannot become a child subreaper here")


def test_what_a_sigkilled_run_started_is_stopped_by_its_watcher():
    # A stand-in for `t2g run` and the server it starts: the run is SIGKILLed (as the OOM
    # killer does), so no atexit or finally of its own can clean up.
    _subreaper()
    run = subprocess.Popen([sys.executable, "-c", _RUN], stdout=subprocess.PIPE, text=True)
    child = int(run.stdout.readline())
    try:
        assert reaper.marked(run.pid).get(child) == run.pid
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert _wait(lambda: not reaper.alive(child), polls=240), f"process {child} outlived its run"
    finally:
        run.kill()
        reaper.stop([child])


def test_a_later_run_stops_orphans_whose_run_is_gone(tmp_path):
    # An orphan whose watcher was killed too: a process marked by a run that no longer exists.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = {**os.environ, reaper.MARK: str(gone.pid)}
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    try:
        assert _wait(lambda: orphan.pid in reaper.marked(gone.pid), polls=100, every=0.1)
        assert orphan.pid in reaper.reap_orphans()
        assert orphan.wait(timeout=60) is not None
    finally:
        orphan.kill()


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""
