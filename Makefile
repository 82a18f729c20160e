# The README's commands. Each sets up .venv in the checkout on first use.
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.t2g-installed
# Every package pinned with its hashes (bench/lockfile.py says how it is made); torch is
# the CPU build 2.13.0 from pip's find-links folder, so pip never pulls a CUDA build.
LOCK  ?= constraints/lock.txt
ARGS  ?=

# The tiny recipe's figures are exact for the lock and for the CPU kernels: the same lock
# trains other floats under AVX-512 than under AVX2 (docs/log.md, 2026-12-06). Every target
# runs torch's AVX2 kernels (and MKL's and oneDNN's AVX2 paths), so a fresh clone reproduces
# the README's table on any x86-64 host with AVX2. Matmul speed is unchanged on the AMD
# hosts measured (MKL takes its AVX2 path there either way). Other figures for AVX-512's
# kernels: `make demo ATEN_CPU_CAPABILITY=avx512`.
export ATEN_CPU_CAPABILITY ?= avx2
export MKL_CBWR ?= AVX2
export ONEDNN_MAX_CPU_ISA ?= AVX2

.PHONY: demo test bench drift lock install clean

install: $(STAMP)

# The lock first, hash-checked, then the project itself without dependencies: the tree is
# exactly the lock's. The locked uv installs it (seconds; pip took one to two minutes), pip
# when uv cannot. pip check fails when pyproject.toml asks for more than the lock holds (a
# dependency added without `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m bench.lockfile --install $(LOCK)
	$(PY) -m pip check
	touch $(STAMP)

# Recompile the lock from pyproject.toml (dependencies + dev) and constraints/cpu.txt,
# keeping every pin that still fits; `make lock ARGS=--upgrade` takes the newest tree.
# Then `make install` installs it.
lock: $(STAMP)
	$(PY) -m bench.lockfile $(ARGS)

demo: $(STAMP)
	$(VENV)/bin/t2g run --config configs/tiny.yaml

# Tests run in parallel (pytest-xdist), one worker more than the cores: a third of the
# suite's wall time is tests waiting on servers and subprocesses (docs/log.md, 2026-12-06).
# Each worker starts its own SeaweedFS and Prefect server. TEST_WORKERS=0: one process.
TEST_WORKERS ?= $(shell python3 -c 'import os; print(len(os.sched_getaffinity(0)) + 1)')

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist worksteal  # soaks: pytest -m slow

bench: $(STAMP)
	$(PY) -m bench

# Whether a fresh unlocked install would get another tree (bench/drift.py); also in `make bench`.
drift: $(STAMP)
	$(PY) -m bench drift

clean:
	rm -rf .t2g .pytest_cache .hypothesis
