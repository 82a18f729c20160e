"""Would a fresh, unlocked install today get another tree than constraints/lock.txt?

    python -m bench drift      # (`make drift`; also in `make bench`) figures under `drift`

Compiles the newest tree pyproject.toml's ranges allow (as `pip install -e .[dev]` without
the lock would get it) into a temporary file and lists every package whose version moved
against the lock. It only asks the package index; nothing is installed.

How to act on it: `moves_figures` true means a package that the recipe's numbers depend on
(FIGURES) moved. Seen on the demo: transformers, tokenizers and trl moving under floors
moved every F1 figure (issue 27). Then `make lock ARGS=--upgrade` (or a narrower
`python -m bench.lockfile --upgrade`), `make install`, rerun `make demo` and the three
seeds, and commit the lock together with the new figures: each entry in
bench/results.json names the lock it was measured under (`lock`). Moves only in other
packages can be taken with the next relock, or left.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from bench.lockfile import LOCK, compile_lock, lock_id, pins

# Packages whose version changes what the recipe computes (training, tokenizing,
# generation, sampling, numerics, data loading): a move here may move the figures.
FIGURES = {"torch", "transformers", "tokenizers", "trl", "accelerate", "peft", "datasets", "numpy",
           "scipy", "xgrammar", "safetensors", "pyarrow", "pandas", "datasketch", "huggingface-hub"}  # fmt: skip


def compare(locked: dict[str, str], fresh: dict[str, str]) -> dict[str, Any]:
    """What moved from `locked` to `fresh`: name -> [locked, fresh] ('-' where absent)."""
    moved = {n: [locked.get(n, "-"), fresh.get(n, "-")] for n in sorted(locked.keys() | fresh.keys())
             if locked.get(n) != fresh.get(n)}  # fmt: skip
    figures = sorted(n for n in moved if n in FIGURES)
    return {"moved": moved, "moved_count": len(moved), "moves_figures": bool(figures), "figure_packages_moved": figures}


def run(smoke: bool = False) -> dict[str, Any]:
    locked = pins(LOCK.read_text())
    if smoke:  # offline: the lock against itself, which must show no move
        return {**compare(locked, locked), "packages": len(locked), "smoke": True}
    with tempfile.TemporaryDirectory(prefix="t2g-drift-") as tmp:
        fresh_path = Path(tmp) / "fresh.txt"
        compile_lock(fresh_path, upgrade=True)
        fresh = pins(fresh_path.read_text())
    return {**compare(locked, fresh), "packages": len(locked), "compared_lock": lock_id(),
            "checked": dt.date.today().isoformat()}  # fmt: skip
