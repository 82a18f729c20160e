"""Prefect Secret blocks, read for t2g (which never imports Prefect): the reader that
tasks hand to `t2g.llm.use_secrets`, so a recipe's `api_key_block` (extract's, graph's,
reason's, the resolve judge's) names where a model key lives without the key ever being
in a recipe, an override, a log or a cache key."""

from __future__ import annotations


def secret(name: str) -> str:
    from prefect.blocks.system import Secret

    return str(Secret.load(name).get())
