"""Open the artifact store with credentials from the environment or a Prefect block.

boto3 reads the standard AWS environment by itself. A team that keeps its keys in Prefect
instead names an `AwsCredentials` block (prefect-aws, the `aws` extra) in
T2G_AWS_CREDENTIALS_BLOCK; its keys, region and endpoint are handed to the store here and
never logged or written anywhere.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from t2g.llm.cache import ResponseCache
from t2g.store import Store

BLOCK_ENV = "T2G_AWS_CREDENTIALS_BLOCK"


def open_store(root: str) -> Store:
    return Store(root, **_s3_kwargs()) if root.startswith("s3://") else Store(root)


def open_llm_cache(recipe: Any) -> ResponseCache:
    """The recipe's LLM response cache: in the store `llm_cache` names, else its own."""
    return ResponseCache(open_store(recipe.llm_cache or recipe.store))


@cache
def _block_kwargs(name: str) -> tuple[tuple[str, Any], ...]:
    try:
        from prefect_aws import AwsCredentials
    except ImportError:
        raise RuntimeError(f"{BLOCK_ENV}={name!r} needs prefect-aws: pip install 't2g[aws]'") from None
    creds = AwsCredentials.load(name)
    secret = creds.aws_secret_access_key.get_secret_value() if creds.aws_secret_access_key else None
    kwargs = {
        "aws_access_key_id": creds.aws_access_key_id,
        "aws_secret_access_key": secret,
        "aws_session_token": creds.aws_session_token,
        "region_name": creds.region_name,
        "endpoint_url": creds.aws_client_parameters.endpoint_url,
    }
    return tuple((k, v) for k, v in kwargs.items() if v)


def _s3_kwargs() -> dict[str, Any]:
    name = os.environ.get(BLOCK_ENV)
    return dict(_block_kwargs(name)) if name else {}
