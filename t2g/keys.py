"""The key of a node, computed in one place: `node_key`.

A node's key is a digest of its name, its recipe section, its inputs' keys (by parameter),
the fingerprints of what the section names outside the store (the registry's `external`
hook) and the stage's code version. It is the artifact's key in the store and, with the
store's root, the Prefect cache key, so the two agree on what is done.

t2g.dag computes every node's key once, when it plans a recipe, and the node carries it
(`Node.key`): the walker, the tasks, the runner, the shards and the launched ranks read
it. A shard's key is the same digest with the shard's content digest in front of the
other inputs (`shard=`), under the name `<node>-shard`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from t2g.fingerprint import run_nonce
from t2g.stage import cache_key
from t2g.stages import Stage, registered


def config_dict(config: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A recipe section as the key and the manifests record it."""
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)


def shard_stage(stage: str) -> str:
    return f"{stage}-shard"  # shard outputs (key = shard key); side tables: <stage>-shard-<side>


def node_key(
    name: str,
    config: Any,
    inputs: Mapping[str, str],
    shard: str | None = None,
    registry: Mapping[str, Stage] | None = None,
) -> str:
    """The key of node `name` run on the section `config` with `inputs` ({parameter:
    upstream key}); with `shard` (a shard's content digest), the key of that shard's output,
    whose other inputs are `inputs`. The only function that computes a key."""
    spec = registered(name, None if registry is None else dict(registry))
    wiring = [f"{param}={key}" for param, key in sorted(inputs.items())]
    label = name if shard is None else shard_stage(name)
    if shard is not None:
        wiring.insert(0, shard)
    return cache_key(label, config_dict(config), [*wiring, *external_wiring(spec, config)], spec.code_version())


def external_wiring(spec: Stage, config: Any) -> list[str]:
    """The fingerprints of what the section names outside the store, as key parts (none
    for a stage that names nothing, so its key is what it was before fingerprints). One
    without a fingerprint gets this run's nonce: the same key all through the run, and
    no later run finds it."""
    return [
        f"external:{name}={fp if fp is not None else 'unpinned:' + run_nonce()}"
        for name, fp in sorted(spec.externals(config).items())
    ]


def never_cached(stage: str, config: Any) -> list[str]:
    """Why the stage is never a cache hit under this section, one line per input."""
    return [
        f"{name} has no pinned revision: never cached"
        for name, fp in sorted(registered(stage).externals(config).items())
        if fp is None
    ]
