"""What a deployment's run may change (docs/service.md, "Access model").

A run started from a deployment takes its parameters from whoever called the API. Those
parameters must not redirect the worker's credentials or make it read files that are not
recipes, so before anything is loaded the flow checks them against its deployment:

- `config` names a `.yaml`/`.yml` regular file under the project's `configs/` or a folder
  the operator declared in T2G_RECIPE_DIRS (os.pathsep-separated, set on the worker), or
  is the deployment's own `config`;
- `store` is the deployment's own `store` (or none);
- `overrides` touch no endpoint or credential field (`*.base_url`, `*.api_key_env`,
  `*.api_key_block`, `store`, `llm_cache`) except those listed in the deployment's own
  `overrides`;
- `index` is a plain name (it becomes a file name under the store);
- `benchmark` is a `.jsonl` regular file under the project's `data/` or T2G_DATA_DIRS.

The operator allows more with deployment tags (a deployment-level setting, which a run
cannot change): `t2g-allow:store`, `t2g-allow:extract.base_url`, ... The values the
deployment itself sets are always allowed: the operator chose them.

Runs that are not a deployment's (`t2g run`, a flow called in Python) are not checked:
their caller already runs code as the user.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALLOW_TAG = "t2g-allow:"
RECIPE_DIRS_ENV = "T2G_RECIPE_DIRS"
DATA_DIRS_ENV = "T2G_DATA_DIRS"
# `{date}` is the only placeholder an index takes; no separators, no leading dot.
INDEX_NAME = re.compile(r"[A-Za-z0-9_{}][A-Za-z0-9_.{}-]{0,127}")


@dataclass(frozen=True)
class Policy:
    """A deployment's own settings: its default parameters and the fields its tags allow."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    allow: frozenset[str] = frozenset()

    @classmethod
    def of(cls, deployment: Any) -> Policy:
        tags = getattr(deployment, "tags", None) or []
        allow = frozenset(t[len(ALLOW_TAG) :] for t in tags if t.startswith(ALLOW_TAG))
        return cls(parameters=dict(getattr(deployment, "parameters", None) or {}), allow=allow)


def _dirs(env: str, cwd: Path, defaults: list[str]) -> list[Path]:
    declared = [d for d in os.environ.get(env, "").split(os.pathsep) if d.strip()]
    return [(cwd / d).resolve() for d in [*defaults, *declared]]


def recipe_roots(cwd: Path | None = None) -> list[Path]:
    return _dirs(RECIPE_DIRS_ENV, Path(cwd or Path.cwd()), ["configs"])


def data_roots(cwd: Path | None = None) -> list[Path]:
    return _dirs(DATA_DIRS_ENV, Path(cwd or Path.cwd()), ["data"])


def _refuse(what: str, why: str, allow: str) -> Exception:
    from t2g.config import RecipeError

    return RecipeError(f"deployment run refused: {what}: {why}. {allow}")


def check_run(
    policy: Policy,
    config: str,
    store: str | None = None,
    overrides: list[str] | None = None,
    index: str | None = None,
    cwd: Path | None = None,
) -> Path:
    """The recipe path a deployment's run may load, or a RecipeError naming the parameter
    and how the operator allows it. Reads no file: the error never holds file content."""
    from t2g.config import RecipeError, check_deployment_overrides, check_recipe_path

    roots = recipe_roots(cwd)
    own = policy.parameters.get("config")
    if own is not None and str(config) == str(own):  # the deployment's own recipe, wherever it is
        roots.append((Path(cwd or Path.cwd()) / str(own)).resolve().parent)
    try:  # from the working directory the flow runs in (the repository root: the pull step)
        path = check_recipe_path(Path(cwd or Path.cwd()) / str(config), roots)
    except RecipeError as exc:
        raise _refuse(
            "config", str(exc), f"Put the recipe under {roots[0]} or a folder named in {RECIPE_DIRS_ENV} on the worker."
        ) from None
    if store is not None and store != policy.parameters.get("store") and "store" not in policy.allow:
        raise _refuse(
            "store", "a run may not choose where its artifacts go (and which credentials reach them)",
            "Set `store` in the deployment itself, or allow it with the deployment tag t2g-allow:store.",
        )  # fmt: skip
    given = set(policy.parameters.get("overrides") or [])
    try:
        check_deployment_overrides([o for o in overrides or [] if o not in given], policy.allow)
    except RecipeError as exc:
        raise _refuse(
            "overrides", str(exc), "The operator allows a field with the deployment tag t2g-allow:<field>."
        ) from None
    if index is not None and index != policy.parameters.get("index") and not INDEX_NAME.fullmatch(index):
        raise _refuse(
            "index", "must be a plain name (letters, digits, _ . - and {date}), not a path", "Pick another name."
        )
    return path


def check_benchmark(benchmark: str, cwd: Path | None = None) -> Path:
    """A benchmark a deployment's run may read: a `.jsonl` regular file under `data/` or a
    folder in T2G_DATA_DIRS (never a file of the machine that is not data)."""
    roots = data_roots(cwd)
    path = (Path(cwd or Path.cwd()) / benchmark).resolve()
    inside = any(path.is_relative_to(r) for r in roots)
    if not inside or path.suffix != ".jsonl" or not path.is_file():
        raise _refuse(
            f"benchmark {benchmark}", "must be a .jsonl regular file under " + " or ".join(map(str, roots)),
            f"The operator declares more folders in {DATA_DIRS_ENV} on the worker.",
        )  # fmt: skip
    return path


def _deployment(deployment_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment(deployment_id)


def deployment_policy() -> Policy | None:
    """The policy of the deployment this flow run belongs to; None when it is not a deployment's run."""
    from prefect.runtime import deployment

    deployment_id = deployment.id
    return None if deployment_id is None else Policy.of(_deployment(deployment_id))


def guard(config: str, store: str | None = None, overrides: list[str] | None = None,
          index: str | None = None, benchmark: str | None = None) -> str:  # fmt: skip
    """The recipe path to load: checked when this flow run is a deployment's, as given otherwise."""
    policy = deployment_policy()
    if policy is None:
        return config
    path = check_run(policy, config, store, overrides, index)
    if benchmark is not None:
        check_benchmark(benchmark)
    return str(path)
