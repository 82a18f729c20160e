"""What an artifact's `_manifest.json` must look like before anything in it is trusted.

A manifest is the only record of what an artifact owns: readers follow its part list and
`t2g store gc` deletes what it does not claim. So its shape is checked strictly and by
itself (reading no part) before any part is read or anything is deleted:

- `format` is this code's `MANIFEST_FORMAT`. A manifest without one (written before format
  versions, or edited), with an older one (whose checks were weaker: format 2 let a part
  without `sha256` through, and digest format 1 had no table digest at all) or a newer one
  (checks this code does not know) is corrupt: quarantined and recomputed, never trusted.
- `stage` and `key` name the folder it lies in (a manifest copied elsewhere is not that
  artifact's).
- Every name carries the writer's attempt id: part `i` is `part-<attempt>-<i:05d>.parquet`
  and the files folder is `files/<attempt>`; so an edited name is a shape error, and what
  carries the attempt id is the manifest's own even where its lists were edited.
- Every part has its rows, `digest` (of its rows) and `sha256` (of its bytes), every file
  its sha256; the totals agree with the parts.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

MANIFEST = "_manifest.json"
# 3: `format` written, every part's and file's digests required, names tied to the attempt.
MANIFEST_FORMAT = 3
# Still written, so that code from before format versions (which reads only this field)
# checks table digests when it reads an artifact written by this code.
DIGEST_FORMAT = 2
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ATTEMPT = re.compile(r"^[0-9a-f]{1,32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Set by the writer, so a caller's metadata may not carry them.
RESERVED = frozenset(
    {"format", "stage", "key", "rows", "digest", "digest_format", "attempt", "parts", "files", "files_dir", "schema"}
)


def part_name(attempt: str, index: int) -> str:
    return f"part-{attempt}-{index:05d}.parquet"


def files_dir(attempt: str) -> str:
    return f"files/{attempt}"


def owns(m: dict[str, Any], inner: str) -> bool:
    """Whether `inner` (a path relative to the artifact folder) belongs to the attempt that
    wrote the checked manifest `m`: listed, or named with its attempt id. gc keeps these
    even when an edit took them off the lists."""
    listed = {p["name"] for p in m["parts"]} | {f"{m['files_dir']}/{n}" for n in m["files"]}
    return inner == MANIFEST or inner in listed or inner.startswith((f"part-{m['attempt']}-", f"{m['files_dir']}/"))


def problems(raw: bytes, stage: str | None = None, key: str | None = None) -> list[str]:
    """What is wrong with a manifest by itself (empty when nothing): not JSON, no or
    another format version, a wrong shape, a name not of its attempt, or totals that
    disagree with its parts. Reads no part."""
    try:
        m = json.loads(raw)
    except ValueError as exc:
        return [f"not valid JSON ({exc})"[:300]]
    if not isinstance(m, dict):
        return ["not a manifest (not a JSON object)"]
    found = _format_problem(m.get("format", None), "format" in m)
    if found:
        return [found]
    if stage is not None and m.get("stage") != stage or key is not None and m.get("key") != key:
        return [f"names {str(m.get('stage'))[:64]!r}/{str(m.get('key'))[:64]!r}, not the folder it lies in"]
    attempt = m.get("attempt")
    if not isinstance(attempt, str) or not ATTEMPT.fullmatch(attempt):
        return [f"attempt {str(attempt)[:64]!r} is not an attempt id"]
    parts, files = m.get("parts"), m.get("files")
    if not isinstance(parts, list) or not isinstance(files, dict) or not isinstance(m.get("schema"), list):
        return ["not a manifest (no part list, file table or schema)"]
    for i, p in enumerate(parts):
        found = _part_problem(p, part_name(attempt, i))
        if found:
            return [found[:300]]
    if m.get("files_dir") != files_dir(attempt):
        return [f"files_dir {str(m.get('files_dir'))[:64]!r} is not this attempt's ({files_dir(attempt)!r})"]
    for name, digest in files.items():
        if not FILE_NAME.fullmatch(name) or name == MANIFEST:
            return [f"file name {name[:64]!r} is not allowed"]
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            return [f"file {name}: no sha256"]
    total = sum(p["rows"] for p in parts)
    if m.get("rows") != total or type(m.get("rows")) is not int:
        return [f"rows {str(m.get('rows'))[:32]} disagree with its parts' {total}"]
    whole = hashlib.sha256("".join(p["digest"] for p in parts).encode()).hexdigest()
    if m.get("digest") != whole:
        return [f"digest {str(m.get('digest'))[:12]} disagrees with its parts' {whole[:12]}"]
    return []


def _format_problem(version: Any, present: bool) -> str | None:
    if not present:
        return "no format version (written before manifests carried one, or edited): not trusted, recompute it"
    if type(version) is not int:
        return f"format {str(version)[:32]!r} is not a format version"
    if version < MANIFEST_FORMAT:
        return f"format {version} is older than {MANIFEST_FORMAT} (weaker checks): not trusted, recompute it"
    if version > MANIFEST_FORMAT:
        return f"format {version} is newer than this code reads ({MANIFEST_FORMAT}): not trusted here"
    return None


def _part_problem(p: Any, want_name: str) -> str | None:
    if not isinstance(p, dict):
        return f"malformed part entry {p!r}"
    name = p.get("name")
    if name != want_name:
        return f"part name {str(name)[:80]!r} is not the writer's ({want_name!r})"
    if type(p.get("rows")) is not int or p["rows"] < 0:
        return f"part {name}: rows {str(p.get('rows'))[:32]!r} is not a row count"
    for field in ("digest", "sha256"):
        if not isinstance(p.get(field), str) or not _SHA256.fullmatch(p[field]):
            return f"part {name}: no {field}"
    return None
