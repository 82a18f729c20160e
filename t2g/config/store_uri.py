"""A recipe's store URIs: `{date}` filled in once per run, and the check that the URI
stays inside the root it names (what t2g.store.Store will open)."""

from __future__ import annotations

import datetime
from pathlib import PurePosixPath
from urllib.parse import urlparse


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def dated_store(store: str, now: datetime.datetime | None = None) -> str:
    """`{date}` in a store URI becomes today's UTC date (YYYY-MM-DD): the nightly
    regeneration deployment writes each night under a fresh prefix. A run reads the
    clock once, when its recipe is resolved, so a run across midnight stays in one prefix."""
    if "{date}" not in store:
        return store
    return store.replace("{date}", (now or utc_now()).strftime("%Y-%m-%d"))


def check_store_uri(store: str) -> str:
    """`store` when t2g.store.Store can open it without leaving the root it names:
    file://DIR (or a bare path) or s3://bucket/prefix, with no `..` segment (nor `.` in an
    S3 prefix, which Store refuses too). Checked at load, so `t2g run` fails before Prefect
    starts. Raises ValueError saying what to change."""
    parsed = urlparse(store)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"store {store!r} names no bucket: use s3://bucket/prefix")
        if any(seg in (".", "..") for seg in parsed.path.split("/")):
            raise ValueError(f"store {store!r}: an S3 prefix may not contain '.' or '..' segments")
    elif parsed.scheme in ("file", ""):
        if parsed.scheme == "file" and not store.startswith("file://"):
            raise ValueError(f"store {store!r}: write file://DIR")
        path = store.removeprefix("file://")
        if not path:
            raise ValueError(f"store {store!r} names no folder: use file://DIR")
        if ".." in PurePosixPath(path).parts:
            raise ValueError(f"store {store!r}: a '..' segment leaves the folder it names; give the folder itself")
    else:
        raise ValueError(f"store {store!r}: unknown scheme {parsed.scheme!r}; use file://DIR or s3://bucket/prefix")
    return store
