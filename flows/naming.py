"""Flow-run names that say what runs: `<recipe>-<what>-<time>`."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import yaml


def run_name(what: str) -> Callable[[], str]:
    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters or {}
        recipe = _recipe_name(params.get("config"))
        stamp = datetime.datetime.now().strftime("%m%d-%H%M%S")
        until = params.get("until")
        return f"{recipe}-{what}" + (f"-to-{until}" if until else "") + f"-{stamp}"

    return name


def _recipe_name(config: object) -> str:
    try:
        data = yaml.safe_load(Path(str(config)).read_text(encoding="utf-8"))
        return str(data.get("name") or Path(str(config)).stem)
    except Exception:
        return Path(str(config)).stem if config else "recipe"
