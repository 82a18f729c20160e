"""What machine a timing was measured on: the CPU's name, the cores this process may use,
and its float32 matrix-multiply rate through torch (the demo's training and generation are
mostly `aten::mm`). Two hosts of the same kind differed 2.5x in the demo's teacher stage
(docs/log.md, 2026-12-06): a wall time means little without this beside it. The kernel
set torch uses rides along: figures (not only times) depend on it.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(seconds: float = 2.0, n: int = 1024) -> float:
    """float32 n x n matrix products for `seconds` on torch's default threads, in GFLOPS."""
    import torch

    a = torch.randn(n, n)
    a @ a  # the first call pays for the kernels' setup
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ a
        done += 1
    return round(done * 2 * n**3 / (time.perf_counter() - started) / 1e9, 1)


def describe(seconds: float = 2.0) -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        # Which vector kernels torch runs (AVX2, AVX512): the same lock gives other floats
        # under other kernels, so the demo's figures name it (make sets AVX2, see Makefile).
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "matmul_gflops": matmul_gflops(seconds),
    }
