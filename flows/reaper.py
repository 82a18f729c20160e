"""No process outlives the `t2g run` that started it.

Prefect's ephemeral API server is a child process that survives its parent when the
parent is SIGKILLed (the OOM killer does that), holding its port until someone finds it.
`t2g run` marks its environment with its PID (children inherit it) and starts a small
watcher that, once the run is gone, stops every process still carrying the mark. A later
run also stops marked processes whose run is gone, in case the watcher was killed too.

Linux only (/proc); elsewhere both are no-ops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MARK = "T2G_RUN_PID"


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def marked(owner: int | None = None) -> dict[int, int]:
    """Processes carrying the mark: pid -> the run that started them (only `owner`'s if given)."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").is_dir() else []:
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        mark = _environ(pid).get(MARK, "")
        if mark.isdigit() and (owner is None or int(mark) == owner):
            found[pid] = int(mark)
    return found


def stop(pids: list[int], grace_s: float = 10) -> None:
    """SIGTERM, then SIGKILL what is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def reap_orphans() -> list[int]:
    """Stop marked processes whose run is gone; returns their PIDs."""
    orphans = [pid for pid, owner in marked().items() if not alive(owner)]
    stop(orphans)
    return orphans


def guard() -> None:
    """Mark this process's environment and start the watcher for it."""
    os.environ[MARK] = str(os.getpid())
    if not Path("/proc").is_dir():
        return
    env = {k: v for k, v in os.environ.items() if k != MARK}  # the watcher must not mark itself
    subprocess.Popen([sys.executable, "-m", "flows.reaper", str(os.getpid())], env=env, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def watch(owner: int, poll_s: float = 1.0) -> None:
    """Wait for `owner` to end, then stop whatever it left behind."""
    while alive(owner):
        time.sleep(poll_s)
    stop(list(marked(owner)))


if __name__ == "__main__":
    watch(int(sys.argv[1]))
