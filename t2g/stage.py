"""What every stage shares: its result shape, its code version and its cache key.

A stage is a plain function, tables in, `StageResult` out. Orchestration (tasks/) turns
the result into artifacts: `main` under the stage's name and each side table under
`<stage>-<name>` (e.g. `collect-quarantine`, `filter-dropped`), all with the same key.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa


@dataclass
class StageResult:
    main: pa.Table | Iterable[pa.Table]
    side: dict[str, pa.Table] = field(default_factory=dict)
    # Counts for the run report and UI: rows in/out, drop reasons, notes.
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    # A stage that produces a model saves it in a flat folder; its files become the
    # artifact's files, and downstream stages receive a local folder instead of a table.
    model_dir: Path | None = None


def code_version(*modules: str) -> str:
    """Digest of the source files of the modules a stage's output depends on.

    Prefect's TASK_SOURCE hashes only the task function's own text; a prompt or parser
    change lives in other modules, so each stage names the modules that shape its output
    (and only those: a change in the rewards must not invalidate extraction).
    """
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        for path in _sources(name):
            h.update(f"{name}:{path.name}".encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _sources(name: str) -> list[Path]:
    """A module's file, or every .py file of a package (a new source kind counts)."""
    module = importlib.import_module(name)
    path = getattr(module, "__file__", None)
    if not path:
        raise ValueError(f"module {name} has no source file to version")
    path = Path(path)
    return sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]


def cache_key(stage: str, config: Any, upstream: Iterable[str], code: str) -> str:
    """The artifact key and the Prefect cache key: same inputs, same config, same code."""
    payload = json.dumps(
        {"stage": stage, "config": config, "upstream": list(upstream), "code": code},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]
