"""Result storage that only ever hands Prefect plain-JSON result records.

Why: Prefect reads a cached result with the serializer named *inside the stored record*,
not with the task's `result_serializer`. A record planted in result storage (a shared
bucket, a shared PREFECT_HOME) that names the pickle serializer is unpickled on the
worker, i.e. runs code. A record naming the JSON serializer is not safe either: its
`object_decoder` (any importable callable, applied to every JSON object) and the default
decoder's `__class__` / `__exc_type__` hooks import modules and build objects named by
the record.

t2g's stage results are small dicts of strings and numbers, so the rule is strict: a
record is served only when it is a JSON result record whose serializer is exactly
Prefect's default JSON serializer and whose payload, parsed as plain JSON, holds no
`__class__` / `__exc_type__` key. Anything else is refused before Prefect deserialises
it: reading raises `UnsafeResultRecord`, which Prefect's cache lookup treats as "no
cached result", so the task runs again (and the store hands back its finished artifact
at once) and overwrites the record with a clean one. Each refusal is logged.

The records themselves live wherever Prefect would put them by default (local
PREFECT_HOME/storage, a configured default storage block, or the server's default):
this block only wraps that storage.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect._internal.compatibility.blocks import (
    call_explicitly_async_block_method,
    call_explicitly_sync_block_method,
)
from prefect.filesystems import WritableFileSystem
from prefect.serializers import JSONSerializer

# Under the "prefect" logger, so the refusal shows in the run's console and API logs.
logger = logging.getLogger("prefect.t2g.results")

_SAFE_SERIALIZER = JSONSerializer().model_dump(mode="json")
_HOOK_KEYS = ("__class__", "__exc_type__")


class UnsafeResultRecord(ValueError):
    """A stored result record t2g will not deserialise."""


def check_record(content: bytes, path: str = "") -> bytes:
    """`content` unchanged when it is a plain-JSON result record; raises UnsafeResultRecord."""
    why = _unsafe(content)
    if why is not None:
        logger.warning("refused result record %s: %s; treating it as a cache miss", path, why)
        raise UnsafeResultRecord(f"result record {path} refused: {why}")
    return content


def _unsafe(content: bytes) -> str | None:
    try:
        record = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return "not a JSON document (e.g. a raw pickle)"
    if not isinstance(record, dict) or not isinstance(record.get("metadata"), dict):
        return "not a result record (no metadata)"
    serializer = record["metadata"].get("serializer")
    if not isinstance(serializer, dict) or serializer.get("type") != "json":
        kind = serializer.get("type") if isinstance(serializer, dict) else serializer
        return f"serializer {kind!r} is not 'json'"
    if serializer != _SAFE_SERIALIZER:
        return "JSON serializer with non-default settings (decoder hooks)"
    payload = record.get("result")
    if not isinstance(payload, str):
        return "result payload is not a JSON string"
    try:
        value = json.loads(payload)
    except ValueError:
        return "result payload is not JSON"
    if _has_hook_key(value):
        return "result payload asks the decoder to build objects (__class__/__exc_type__)"
    return None


def _has_hook_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in value for k in _HOOK_KEYS) or any(_has_hook_key(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_hook_key(v) for v in value)
    return False


def _default_storage() -> WritableFileSystem:
    from prefect.results import get_default_result_storage

    return _not_self(get_default_result_storage(_sync=True))


def _not_self(storage: WritableFileSystem) -> WritableFileSystem:
    # Someone may make this block the server's default result storage: wrapping
    # ourselves would recurse forever, so fall back to Prefect's local default path.
    if isinstance(storage, JsonOnlyResultStorage):
        from prefect.filesystems import LocalFileSystem
        from prefect.settings import get_current_settings

        return LocalFileSystem(basepath=str(get_current_settings().results.local_storage_path))
    return storage


class JsonOnlyResultStorage(WritableFileSystem):
    """Prefect's default result storage, refusing any record that is not plain JSON."""

    _block_type_name = "t2g JSON-only result storage"
    _block_type_slug = "t2g-json-only-result-storage"

    async def aread_path(self, path: str) -> bytes:
        from prefect.results import aget_default_result_storage

        inner = _not_self(await aget_default_result_storage())
        return check_record(await call_explicitly_async_block_method(inner, "read_path", (path,), {}), path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return check_record(call_explicitly_sync_block_method(_default_storage(), "read_path", (path,), {}), path)

    async def awrite_path(self, path: str, content: bytes) -> Any:
        from prefect.results import aget_default_result_storage

        inner = _not_self(await aget_default_result_storage())
        return await call_explicitly_async_block_method(inner, "write_path", (path, content), {})

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> Any:
        return call_explicitly_sync_block_method(_default_storage(), "write_path", (path, content), {})


BLOCK_NAME = "t2g-json-only-results"


@cache
def _saved_block(api_url: str) -> JsonOnlyResultStorage:
    block = JsonOnlyResultStorage()
    block.save(BLOCK_NAME, overwrite=True)
    return block


def json_only_result_storage() -> JsonOnlyResultStorage:
    """The block to pass as a task's `result_storage`: Prefect accepts only blocks saved
    on its API, so it is saved there once per process and API (it holds no settings)."""
    from prefect.settings import get_current_settings

    return _saved_block(str(get_current_settings().api.url))
