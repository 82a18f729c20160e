"""How a stage that prompts an LLM reaches it (`LLMSection`, shared by extract, reason and
sample), what the backend charges (`Price`), and which variable may hold a model server's
key (`check_api_key_env`)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from t2g.config.section import Section
from t2g.recipe_input import shown


class Price(Section):
    """What a backend charges, per million tokens (any currency: the report uses the same)."""

    prompt_per_million: float = Field(0.0, ge=0)
    completion_per_million: float = Field(0.0, ge=0)


class LLMSection(Section):
    """How a stage that prompts an LLM reaches it (t2g.llm): the model, the backend's
    settings and the sampling. Shared by extract (the teacher) and reason (the reasoner)."""

    model: str | None = Field(
        None, description='model path or hub name (openai: the served name); extract also takes "@teacher"'
    )
    model_revision: str | None = Field(
        None, description="hub commit, tag or branch of `model`; null: unpinned, never cached"
    )
    # Accounting only (the run report's estimated cost): left out of every dump like
    # `launch`, so a new price moves no artifact key.
    price: Price | None = Field(
        None, exclude=True, description="per million prompt/completion tokens, for the cost estimate"
    )
    trust_remote_code: bool = False
    max_new_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    too_long: Literal["truncate", "skip"] = Field(
        "truncate", description="prompts past the context: cut or skip (counted)"
    )
    max_prompt_tokens: int | None = Field(None, ge=1, description="null: the model's context minus max_new_tokens")
    # transformers
    batch_size: int = Field(8, ge=1, description="transformers: prompts per generate call")
    device: str = Field("auto", description="transformers: auto, cpu, cuda, cuda:1, ...")
    dtype: str = Field("auto", description="transformers/vllm: auto, bfloat16, float16, float32")
    # vllm
    tensor_parallel_size: int = Field(1, ge=1)
    quantization: str | None = None
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    # openai-compatible servers
    base_url: str | None = None
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="environment variable holding the key: NAME_API_KEY, not a store's, cloud's or orchestrator's",
    )
    api_key_block: str | None = Field(None, description="Prefect Secret block holding the key (wins over api_key_env)")
    max_in_flight: int = Field(32, ge=1)
    timeout_s: float = Field(300.0, gt=0, description="per request")
    max_retries: int = Field(6, ge=0, description="on 429/5xx/connection errors/timeouts; a 400 is never retried")
    backoff_s: float = Field(1.0, ge=0, description="first delay, doubling, with full jitter")

    @field_validator("api_key_env")
    @classmethod
    def _a_model_server_key(cls, name: str) -> str:
        return check_api_key_env(name)

    @field_validator("base_url")
    @classmethod
    def _a_server_url(cls, url: str | None) -> str | None:
        return None if url is None else check_base_url(url)


def check_base_url(url: str) -> str:
    """`url` when it is an http(s) URL without credentials; else a ValueError saying what
    to write. A malformed one failed only when the stage first sent a request (httpx's
    InvalidURL, a traceback); `user:pass@` would be written, like every section field, into
    each manifest and the repr of the backend: the key goes in api_key_env's variable."""
    try:
        parsed = urlsplit(url)
    except ValueError as exc:  # its message quotes no part of the URL
        raise ValueError(f"base_url is not a URL ({exc}): write http(s)://HOST[:PORT]/v1") from None
    if parsed.username is not None or parsed.password is not None:  # checked first: never echoed
        raise ValueError(
            "base_url holds credentials (user:password@): they would be written into every manifest; "
            "give the server's key in the variable api_key_env names (or api_key_block)"
        )
    try:
        parsed.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ValueError(f"base_url {shown(url)} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"base_url {shown(url)}: write http(s)://HOST[:PORT]/v1")
    return url


# The variable `api_key_env` names is sent, as `Authorization: Bearer <value>`, to
# `base_url`, which the recipe also names: it must be a variable exported for a model
# server and nothing else. So it has the shape NAME_API_KEY (OPENAI_API_KEY,
# TEACHER_API_KEY, VLLM_API_KEY), and is not in the namespace of a credential the worker
# holds for something else: the store (AWS_, S3_, MINIO_), the orchestrator (PREFECT_ —
# PREFECT_API_KEY is Prefect Cloud's —, POSTGRES_, PG, DASK_, RAY_), t2g itself (T2G_),
# a cloud (AZURE_, GOOGLE_, GCP_, GCLOUD_), a code host (GITHUB_, GH_) or the model hub
# (HF_, HUGGING_FACE_: HF_TOKEN also downloads gated models and can push; give a hosted
# teacher an inference-only token in its own variable, e.g. TEACHER_API_KEY).
API_KEY_ENV_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY")
CREDENTIAL_PREFIXES = (
    "AWS_", "S3_", "MINIO_", "PREFECT_", "POSTGRES_", "PG", "DASK_", "RAY_", "T2G_",
    "AZURE_", "GOOGLE_", "GCP_", "GCLOUD_", "GITHUB_", "GH_", "HF_", "HUGGING_FACE_",
)  # fmt: skip


def check_api_key_env(name: str) -> str:
    """`name` when it may name a model server's key (see API_KEY_ENV_PATTERN); else a
    ValueError saying what to name instead."""
    denied = next((p for p in CREDENTIAL_PREFIXES if name.startswith(p)), None)
    if denied:
        raise ValueError(
            f"{shown(name)}: {denied}* variables hold the store's, the orchestrator's, a cloud's or a hub's credentials, "
            "never sent to a model server; export the model server's key as e.g. TEACHER_API_KEY"
        )
    if not API_KEY_ENV_PATTERN.fullmatch(name):
        raise ValueError(
            f"{shown(name)} is not a model server's key variable: name one like TEACHER_API_KEY "
            "(capitals, digits and _, ending in _API_KEY), exported for the model server alone"
        )
    return name
