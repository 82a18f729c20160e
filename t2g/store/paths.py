"""What a path inside the store may be: stage names and keys, artifact file names and
loose paths are checked here, so nothing from a recipe or from data climbs out of the root."""

from __future__ import annotations

import re

from t2g.manifest import FILE_NAME, MANIFEST

QUARANTINE = "_quarantine"
STORE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
TMP_FILE = re.compile(r"^\..+\.tmp-[0-9a-f-]+$")


def check_name(value: str, what: str) -> str:
    """Stage names and keys become path segments: allow only a safe alphabet, so nothing
    from a recipe or from data can climb out of the root (`..`, `/`, `%2f`, `s3://`)."""
    if not isinstance(value, str) or not STORE_NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid store name (lowercase letters, digits, '-', '_'; at most 64)"
        )
    return value


def artifact_dir(stage: str, key: str) -> str:
    """The folder of the artifact `stage`/`key`, relative to the root."""
    return f"{check_name(stage, 'stage')}/{check_name(key, 'key')}"


def loose_path(rel: str) -> str:
    """A relative path of safe segments whose first segment starts with "_": it cannot
    climb out of the root, nor land inside an artifact."""
    segments = rel.split("/") if isinstance(rel, str) else [""]
    if not segments[0].startswith("_") or not all(SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise ValueError(f"store path {rel!r} is not allowed (safe segments, the first starting with '_')")
    return rel


def check_file_name(name: str) -> str:
    if not FILE_NAME.fullmatch(name) or name == MANIFEST:
        raise ValueError(f"artifact file name {name!r} is not allowed")
    return name
