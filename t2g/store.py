"""The artifact store: Parquet parts plus a manifest, under a local folder or S3.

Layout: `<root>/<stage>/<key>/part-<attempt>-NNNNN.parquet`, extra files under
`files/<attempt>/`, then `_manifest.json` written last. An artifact without a manifest
does not exist: readers never see it. Paths whose first segment starts with "_" (no stage
name can) hold loose files that are not artifacts, e.g. training checkpoints.

What is read is what was written. The manifest (its format version and shape are checked
first, `t2g/manifest.py`) lists each part with its row count,
`table_digest` (of its rows) and sha256 (of its bytes), each extra file with its sha256,
and the artifact's total rows and digest. Every read recomputes them: a flipped byte, a
truncated or rewritten part, a missing part or an edited manifest raises `ArtifactCorrupt`
(a ValueError: retrying cannot help) naming the artifact and the part. `Store.finished`
is the cache check: a corrupt artifact is moved to `_quarantine/` (never deleted) and
reported as absent, so the caller recomputes it.

Writers never collide. Each `ArtifactWriter` is one attempt with its own id: its parts and
files carry that id in their names, it deletes nothing, and its manifest lists exactly what
it wrote. The manifest lands atomically (local rename; on S3 a single PUT), so when two
writers of one key race (two runs of one recipe on one store), the last manifest wins and
is whole: the parts and files it lists are its own, and no writer removes another's. Both
writers compute the same key from the same inputs, so either manifest is a valid answer
(a model trained twice may differ in its bytes: each manifest still lists only its own
attempt's files, so a reader never mixes the two).
What the losers leave behind is removed by `Store.gc` once older than its grace period
(which must exceed the longest write), as are folders without a manifest and `.tmp` files;
gc deletes inside an artifact's folder only on the word of a manifest that verifies whole.

Failures: a storage error that a retry may cure (network, service down) is a `StoreError`;
one that it cannot (disk full, quota, permission denied, read-only file system, a missing
S3 bucket that may not be created, bad credentials) is a `StoreFatal`, which the
orchestration does not retry.

Roots: `file://<dir>` (relative paths resolve against the working directory) and
`s3://bucket/prefix`. S3 settings come from the standard AWS environment
(`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), or from
keyword arguments a caller resolved elsewhere (e.g. a Prefect block): never from the recipe.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from t2g.manifest import DIGEST_FORMAT, FILE_NAME, MANIFEST, MANIFEST_FORMAT, RESERVED, files_dir, owns, part_name
from t2g.manifest import problems as manifest_problems

QUARANTINE = "_quarantine"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FILE = FILE_NAME
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
_TMP = re.compile(r"^\..+\.tmp-[0-9a-f-]+$")

log = logging.getLogger("t2g.store")


class StoreError(RuntimeError):
    """A storage failure a retry may cure (network, service down): retried as transient."""


class StoreFatal(RuntimeError):
    """A storage failure no retry can cure (disk full, permission denied, read-only file
    system, missing bucket, bad credentials): not a StoreError, so never retried."""


class ArtifactCorrupt(ValueError):
    """A finished artifact whose bytes disagree with its manifest (or whose manifest is
    unreadable): retrying the read cannot help; recompute it (see `Store.finished`)."""


class ArtifactMissing(KeyError):
    """No finished artifact (no manifest) at this stage and key."""


@dataclass(frozen=True)
class ArtifactRef:
    """The small, JSON-serialisable handle tasks pass between each other."""

    uri: str
    stage: str
    key: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactRef":
        return cls(uri=str(d["uri"]), stage=str(d["stage"]), key=str(d["key"]), rows=int(d["rows"]))


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)  # URIs removed (or, dry run, that would be)
    kept_fresh: list[str] = field(default_factory=list)  # unlisted but younger than the grace period
    # "<stage>/<key>: manifest fails verification: <why>": left alone whole
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False


def check_name(value: str, what: str) -> str:
    """Stage names and keys become path segments: allow only a safe alphabet, so nothing
    from a recipe or from data can climb out of the root (`..`, `/`, `%2f`, `s3://`)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid store name (lowercase letters, digits, '-', '_'; at most 64)")
    return value


# -- errors no retry can cure ------------------------------------------------------------

_FATAL_ERRNO = {
    errno.ENOSPC: "the disk is full: free space or point the store elsewhere",
    errno.EDQUOT: "the disk quota is exhausted: free space or raise the quota",
    errno.EACCES: "permission denied: give this user write access to the store folder",
    errno.EPERM: "operation not permitted: give this user write access to the store folder",
    errno.EROFS: "the file system is read-only: remount it read-write or point the store elsewhere",
}
_FATAL_S3 = {
    "AccessDenied": "access denied: grant these credentials access to the bucket",
    "403": "access denied: grant these credentials access to the bucket",
    "NoSuchBucket": "the bucket does not exist: create it (or allow creating it)",
    "InvalidAccessKeyId": "the access key is unknown: check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the secret key is wrong: check AWS_SECRET_ACCESS_KEY",
    "InvalidBucketName": "the bucket name is invalid",
}


def _fatal_reason(exc: BaseException) -> str | None:
    """Why `exc` cannot be cured by a retry, or None when it may be."""
    if isinstance(exc, OSError) and exc.errno in _FATAL_ERRNO:
        return _FATAL_ERRNO[exc.errno]
    response = getattr(exc, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        return _FATAL_S3.get(str(response.get("Error", {}).get("Code", "")))
    return None


class _Files:
    """Local folder backend."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, rel: str) -> Path:
        return self.root / rel

    @staticmethod
    def _tmp(path: Path) -> Path:
        # pid and a random part: two threads of one process may write the same name
        return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def _replace_from(self, path: Path, fill) -> None:
        """Write through a temporary file and rename it into place, so a reader sees the old
        file or the whole new one; the temporary file never outlives a failure."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp(path)
        try:
            fill(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, rel: str, data: bytes) -> None:
        def fill(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())

        self._replace_from(self._path(rel), fill)

    def put_file(self, rel: str, src: Path) -> None:
        self._replace_from(self._path(rel), lambda tmp: shutil.copyfile(src, tmp))

    def get_file(self, rel: str, dest: Path) -> None:
        if not self._path(rel).is_file():
            raise KeyError(rel)
        self._replace_from(dest, lambda tmp: shutil.copyfile(self._path(rel), tmp))

    def local_path(self, rel: str) -> Path | None:
        return self._path(rel)

    def get(self, rel: str) -> bytes:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            raise KeyError(rel) from None

    def digest(self, rel: str) -> str:
        try:
            return _file_digest(self._path(rel))
        except FileNotFoundError:
            raise KeyError(rel) from None

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def list(self, rel: str) -> list[str]:
        folder = self._path(rel)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def list_tree(self, rel: str) -> list[str]:
        return [name for name, _ in self.list_tree_times(rel)]

    def list_tree_times(self, rel: str) -> list[tuple[str, float]]:
        """Every file under `rel/` with its modification time (seconds since the epoch)."""
        return [(name, mtime) for name, _, mtime in self.list_tree_stats(rel)]

    def list_tree_stats(self, rel: str) -> list[tuple[str, int, float]]:
        """Every file under `rel/` with its size and modification time."""
        folder = self._path(rel)
        if not folder.is_dir():
            return []
        out = []
        for p in folder.rglob("*"):
            try:
                if p.is_file():
                    st = p.stat()
                    out.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime))
            except FileNotFoundError:
                pass  # removed while we looked
        return sorted(out)

    def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise KeyError(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def delete(self, rel: str) -> None:
        self._path(rel).unlink(missing_ok=True)
        for parent in self._path(rel).parents:  # drop folders left empty, up to the root
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def delete_tree(self, rel: str) -> None:
        shutil.rmtree(self._path(rel), ignore_errors=True)

    def uri(self, rel: str) -> str:
        return self._path(rel).resolve().as_uri()


class _S3:
    """S3 backend (AWS S3, MinIO, SeaweedFS) through boto3."""

    def __init__(self, bucket: str, prefix: str, create_bucket: bool = True, **client_kwargs: Any):
        import boto3.session
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        # Bounded timeouts and boto's own retries: an outage becomes an error quickly,
        # and the task's retry policy decides what happens next.
        config = Config(
            connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}
        )
        # A session of our own: its public get_credentials() tells launched ranks what this
        # client signs with, wherever the keys came from (environment, profile, a block).
        session_keys = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name")
        self.session = boto3.session.Session(**{k: v for k, v in client_kwargs.items() if k in session_keys})
        others = {k: v for k, v in client_kwargs.items() if k not in session_keys}
        self.client = self.session.client("s3", config=config, **others)
        self._bucket_checked = False
        self._create_bucket = create_bucket

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def environment(self) -> dict[str, str]:
        env = {"AWS_ENDPOINT_URL_S3": self.client.meta.endpoint_url}
        if self.client.meta.region_name:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.client.meta.region_name
        credentials = self.session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = frozen.access_key, frozen.secret_key
            if frozen.token:
                env["AWS_SESSION_TOKEN"] = frozen.token
        return env

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
            if not self._create_bucket:
                raise StoreFatal(f"bucket {self.bucket!r} does not exist and this store may not create it: create it") from exc
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc2:
                if str(exc2.response.get("Error", {}).get("Code", "")) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_checked = True

    def put(self, rel: str, data: bytes) -> None:
        self._ensure_bucket()
        self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)

    def put_file(self, rel: str, src: Path) -> None:
        self._ensure_bucket()
        self.client.upload_file(str(src), self.bucket, self._key(rel))  # multipart for big files

    def get_file(self, rel: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            self.client.download_file(self.bucket, self._key(rel), str(tmp))
            os.replace(tmp, dest)
        except Exception as exc:
            if _missing(exc):
                raise KeyError(rel) from None
            raise
        finally:
            tmp.unlink(missing_ok=True)

    def local_path(self, rel: str) -> Path | None:
        return None

    def _body(self, rel: str):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"]
        except Exception as exc:
            if _missing(exc):
                raise KeyError(rel) from None
            raise

    def get(self, rel: str) -> bytes:
        return self._body(rel).read()

    def digest(self, rel: str) -> str:
        h = hashlib.sha256()
        for chunk in self._body(rel).iter_chunks(1 << 20):
            h.update(chunk)
        return h.hexdigest()

    def exists(self, rel: str) -> bool:
        try:
            self.get(rel)  # manifests are small; one GET avoids HEAD's ambiguous 403/404
        except KeyError:
            return False
        return True

    def list(self, rel: str) -> list[str]:
        return [n for n in self.list_tree(rel) if "/" not in n]

    def list_tree(self, rel: str) -> list[str]:
        return [name for name, _ in self.list_tree_times(rel)]

    def list_tree_times(self, rel: str) -> list[tuple[str, float]]:
        return [(name, mtime) for name, _, mtime in self.list_tree_stats(rel)]

    def list_tree_stats(self, rel: str) -> list[tuple[str, int, float]]:
        self._ensure_bucket()
        prefix = self._key(rel).rstrip("/") + "/" if rel or self.prefix else ""
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            names += [(o["Key"][len(prefix) :], int(o["Size"]), o["LastModified"].timestamp()) for o in page.get("Contents", [])]
        return sorted(names)

    def move(self, src: str, dst: str) -> None:
        # Copy, then delete: S3 has no rename. The copy is whole before the source goes.
        try:
            self.client.copy({"Bucket": self.bucket, "Key": self._key(src)}, self.bucket, self._key(dst))
        except Exception as exc:
            if _missing(exc):
                raise KeyError(src) from None
            raise
        self.client.delete_object(Bucket=self.bucket, Key=self._key(src))

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))

    def delete_tree(self, rel: str) -> None:
        names = self.list_tree(rel)
        for i in range(0, len(names), 1000):
            objects = [{"Key": self._key(f"{rel}/{n}")} for n in names[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"


def _missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    return code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket")  # reading an absent bucket finds nothing


class Store:
    """Artifacts under one root URI. Safe to share between processes: every write of a
    part or manifest is atomic (local rename, S3 single PUT), and writers never delete."""

    def __init__(self, root: str, **s3_kwargs: Any):
        self.root = root
        parsed = urlparse(root)
        if parsed.scheme == "file" or (parsed.scheme == "" and root):
            path = root[len("file://") :] if root.startswith("file://") else root
            self._backend: _Files | _S3 = _Files(Path(path).expanduser())
        elif parsed.scheme == "s3":
            if not parsed.netloc:
                raise ValueError(f"store {root!r}: an S3 root needs a bucket, e.g. s3://bucket/prefix")
            prefix = parsed.path.strip("/")
            if any(seg in ("..", ".") for seg in prefix.split("/")):
                raise ValueError(f"store {root!r}: the prefix may not contain '.' or '..' segments")
            self._backend = _S3(parsed.netloc, prefix, **s3_kwargs)
        else:
            raise ValueError(f"store {root!r}: use file://<dir> or s3://bucket/prefix")

    # -- paths ------------------------------------------------------------------------

    @staticmethod
    def _dir(stage: str, key: str) -> str:
        return f"{check_name(stage, 'stage')}/{check_name(key, 'key')}"

    def environment(self) -> dict[str, str]:
        """Environment variables with which another process (a launched rank) opens this
        same store as it is opened here: endpoint, region and credentials, wherever they
        came from. Empty for a local folder. Secrets: pass them in an environment, never
        on a command line or in a log."""
        backend = self._backend
        return backend.environment() if isinstance(backend, _S3) else {}

    def uri(self, stage: str, key: str) -> str:
        return self._backend.uri(self._dir(stage, key))

    # -- calls that can fail on the network, wrapped so the error names the URI ----------

    def _call(self, what: str, rel: str, fn, *args):
        try:
            return fn(*args)
        except (KeyError, StoreFatal, ArtifactCorrupt):
            raise
        except Exception as exc:
            where = self._backend.uri(rel)
            reason = _fatal_reason(exc)
            if reason is not None:
                raise StoreFatal(f"store {what} failed for {where}: {reason} ({type(exc).__name__}: {exc})") from exc
            raise StoreError(f"store {what} failed for {where}: {type(exc).__name__}: {exc}") from exc

    # -- reading ----------------------------------------------------------------------

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        """The finished artifact's manifest, checked for shape and for agreement with
        itself (total rows and digest against its parts); ArtifactCorrupt otherwise."""
        rel = f"{self._dir(stage, key)}/{MANIFEST}"
        try:
            raw = self._call("read", rel, self._backend.get, rel)
        except KeyError:
            raise ArtifactMissing(f"{stage}/{key}") from None
        found = manifest_problems(raw, stage, key)
        if found:
            raise ArtifactCorrupt(f"artifact {self.uri(stage, key)}: {MANIFEST}: {found[0]}")
        return json.loads(raw)

    def has(self, stage: str, key: str) -> bool:
        """A manifest exists (unchecked; see `finished` for the verified answer)."""
        rel = f"{self._dir(stage, key)}/{MANIFEST}"
        return bool(self._call("read", rel, self._backend.exists, rel))

    def ref(self, stage: str, key: str) -> ArtifactRef | None:
        """The finished artifact's reference, or None when there is none (its parts are
        not read: see `finished`)."""
        try:
            m = self.manifest(stage, key)
        except ArtifactMissing:
            return None
        return ArtifactRef(uri=self.uri(stage, key), stage=stage, key=key, rows=int(m["rows"]))

    def _part(self, stage: str, key: str, m: dict[str, Any], part: dict[str, Any]) -> pa.Table:
        """One part, read and checked against its manifest entry."""
        name = part["name"]
        rel = f"{self._dir(stage, key)}/{name}"

        def corrupt(problem: str) -> ArtifactCorrupt:
            return ArtifactCorrupt(f"artifact {self.uri(stage, key)}: part {name}: {problem}")

        try:
            data = self._call("read", rel, self._backend.get, rel)
        except KeyError:
            raise corrupt("missing") from None
        try:
            table = pq.read_table(pa.BufferReader(arrow_owned(data)))
        except (pa.ArrowException, OSError) as exc:
            raise corrupt(f"unreadable Parquet ({len(data)} bytes): {exc}") from exc
        if table.num_rows != part["rows"]:
            raise corrupt(f"{table.num_rows} rows, the manifest says {part['rows']}")
        # Both digests are always there: `manifest` refuses one without them (format 3).
        got = table_digest(table)
        if got != part["digest"]:
            raise corrupt(f"digest mismatch (read {got[:12]}, manifest {str(part['digest'])[:12]})")
        # The same rows from other bytes: a flip in statistics or padding, say. Harmless
        # today, but the file is not what was written.
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise corrupt("bytes differ from those written (sha256 mismatch), though the rows read the same")
        return table

    def iter_parts(self, stage: str, key: str) -> Iterator[pa.Table]:
        """Each part in order, one at a time (bounded memory for large artifacts), each
        checked against the manifest: ArtifactCorrupt names the first bad one."""
        m = self.manifest(stage, key)
        for part in m["parts"]:
            yield self._part(stage, key, m, part)

    def read(self, stage: str, key: str) -> pa.Table:
        m = self.manifest(stage, key)
        parts = [self._part(stage, key, m, part) for part in m["parts"]]
        if not parts:
            return pa.schema([]).empty_table() if not m.get("schema") else _schema_from_manifest(m).empty_table()
        return pa.concat_tables(parts)

    def _file_rel(self, stage: str, key: str, m: dict[str, Any], name: str) -> str:
        if name not in m.get("files", {}):
            raise ArtifactMissing(f"{stage}/{key} has no file {name!r}")
        return f"{self._dir(stage, key)}/{m['files_dir']}/{_file_name(name)}"

    def read_file(self, stage: str, key: str, name: str) -> bytes:
        """An extra file of a finished artifact, checked against its manifest digest."""
        m = self.manifest(stage, key)  # only finished artifacts are readable
        rel = self._file_rel(stage, key, m, name)
        try:
            data = self._call("read", rel, self._backend.get, rel)
        except KeyError:
            raise ArtifactCorrupt(f"artifact {self.uri(stage, key)}: file {name}: missing") from None
        got = hashlib.sha256(data).hexdigest()
        if got != m["files"][name]:
            want = str(m["files"][name])
            raise ArtifactCorrupt(f"artifact {self.uri(stage, key)}: file {name}: digest mismatch (read {got[:12]}, manifest {want[:12]})")
        return data

    def _file_problems(self, stage: str, key: str, m: dict[str, Any], local: Path | None = None) -> list[str]:
        """The extra files that are missing or differ from their manifest digest (read from
        `local`, a downloaded copy, when given)."""
        problems = []
        for name, want in m.get("files", {}).items():
            rel = self._file_rel(stage, key, m, name)
            try:
                got = _file_digest(local / name) if local is not None else self._call("read", rel, self._backend.digest, rel)
            except (KeyError, FileNotFoundError):
                problems.append(f"file {name}: missing")
                continue
            if got != want:
                problems.append(f"file {name}: digest mismatch (read {got[:12]}, manifest {str(want)[:12]})")
        return problems

    def materialize(self, stage: str, key: str, cache: Path | None = None) -> Path:
        """A local folder holding the artifact's files (a model, say), every file checked
        against its manifest digest. A local store serves its own folder; an S3 store
        downloads once into `cache` (default ~/.cache/t2g), marking a finished download so
        a partial one is redone."""
        m = self.manifest(stage, key)
        base = self._dir(stage, key)
        folder = f"{base}/{m['files_dir']}"
        local = self._backend.local_path(folder)
        if local is None:
            parsed = urlparse(self.root)
            local = (cache or Path.home() / ".cache" / "t2g") / parsed.netloc / parsed.path.strip("/") / folder
            done = local / ".complete"
            if not (done.exists() and done.read_text() == m["digest"] and not self._file_problems(stage, key, m, local)):
                for name in m.get("files", {}):
                    rel = self._file_rel(stage, key, m, name)
                    try:
                        self._call("read", rel, self._backend.get_file, rel, local / name)
                    except KeyError:
                        raise ArtifactCorrupt(f"artifact {self.uri(stage, key)}: file {name}: missing") from None
                done.write_text(m["digest"])
        problems = self._file_problems(stage, key, m, local)
        if problems:
            raise ArtifactCorrupt(f"artifact {self.uri(stage, key)}: {problems[0]}")
        return local

    # -- integrity --------------------------------------------------------------------

    def verify(self, stage: str, key: str) -> list[str]:
        """Every problem of the finished artifact (empty when it is sound): reads each part
        and file once. ArtifactMissing when there is no manifest."""
        try:
            m = self.manifest(stage, key)
        except ArtifactCorrupt as exc:
            return [str(exc)]
        return self._verify_manifest(stage, key, m)

    def _verify_manifest(self, stage: str, key: str, m: dict[str, Any]) -> list[str]:
        """Every problem of the artifact as the checked manifest `m` describes it."""
        problems = []
        for part in m["parts"]:
            try:
                self._part(stage, key, m, part)
            except ArtifactCorrupt as exc:
                problems.append(str(exc))
        uri = self.uri(stage, key)
        problems += [f"artifact {uri}: {p}" for p in self._file_problems(stage, key, m)]
        return problems

    def quarantine(self, stage: str, key: str) -> str:
        """Move the artifact out of the way, never deleting it: the manifest first (so it
        stops being finished at once), then the files that were in its folder when this
        began, to `_quarantine/<stage>/<key>-<UTC time>/`. Returns the new URI."""
        base = self._dir(stage, key)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = _loose_path(f"{QUARANTINE}/{stage}/{key}-{stamp}")
        names = self._call("list", base, self._backend.list_tree_times, base)
        try:
            self._call("move", base, self._backend.move, f"{base}/{MANIFEST}", f"{dest}/{MANIFEST}")
        except KeyError:
            raise ArtifactMissing(f"{stage}/{key}") from None  # someone else moved it first
        for name, _ in names:
            if name != MANIFEST:
                try:
                    self._call("move", base, self._backend.move, f"{base}/{name}", f"{dest}/{name}")
                except KeyError:
                    pass  # gone meanwhile (another quarantine, gc)
        return self._backend.uri(dest)

    def finished(self, stage: str, key: str) -> ArtifactRef | None:
        """The cache check: the artifact's reference when it is finished and verifies;
        None when there is none, or when it was corrupt: then it is quarantined, a warning
        names it, its problems and where it went, and the caller recomputes it."""
        try:
            m = self.manifest(stage, key)
        except ArtifactMissing:
            return None
        except ArtifactCorrupt as exc:
            problems = [str(exc)]
        else:
            problems = self.verify(stage, key)
            if not problems:
                return ArtifactRef(uri=self.uri(stage, key), stage=stage, key=key, rows=int(m["rows"]))
        try:
            moved = self.quarantine(stage, key)
        except ArtifactMissing:
            return None  # another process quarantined it first
        uri = self.uri(stage, key)
        log.warning("corrupt artifact %s (%s) moved to %s; it will be recomputed", uri, "; ".join(problems), moved)
        return None

    def artifacts(self, stage: str | None = None) -> list[tuple[str, str]]:
        """(stage, key) of every artifact with a manifest (checked or not), sorted."""
        rel = check_name(stage, "stage") if stage else ""
        names = self._call("list", rel or ".", self._backend.list_tree, rel)
        out = set()
        for name in names:
            segments = (f"{rel}/{name}" if rel else name).split("/")
            if len(segments) == 3 and segments[2] == MANIFEST and _NAME.fullmatch(segments[0]) and _NAME.fullmatch(segments[1]):
                out.add((segments[0], segments[1]))
        return sorted(out)

    def gc(self, grace_s: float = 86400, dry_run: bool = False) -> GcReport:
        """Remove what no verified manifest owns, once older than `grace_s` (file mtime, S3
        LastModified): parts and files of attempts that lost a race or died, folders
        without a manifest, and `.tmp` leftovers anywhere but in quarantine. `grace_s`
        must exceed the longest write: a writer's parts are unlisted until its manifest lands.

        Nothing is deleted on a manifest's word unless it verifies: an artifact whose
        manifest fails verification (unreadable, no or another format version, an edited
        name, a missing or altered part or file) is skipped whole and named in
        `report.skipped`, since a damaged manifest no longer says what it owns. A manifest
        is verified (every part and file read) only when its folder holds something old to
        remove; `verify` checks the rest. A dry run plans exactly as the real run does."""
        report = GcReport(dry_run=dry_run)
        doomed = self._gc_plan(grace_s, report)
        for name in doomed:
            if not dry_run:
                self._call("delete", name, self._backend.delete, name)
            report.removed.append(self._backend.uri(name))
        return report

    def _gc_plan(self, grace_s: float, report: GcReport) -> list[str]:
        """The paths gc removes; fills `report.kept_fresh` and `report.skipped`."""
        now = time.time()
        doomed: list[str] = []

        def judge(name: str, mtime: float) -> None:
            if now - mtime < grace_s:
                report.kept_fresh.append(self._backend.uri(name))
            else:
                doomed.append(name)

        folders: dict[str, list[tuple[str, float]]] = {}  # artifact folder -> (path inside it, mtime)
        for name, mtime in self._call("list", ".", self._backend.list_tree_times, ""):
            segments = name.split("/")
            if segments[0] == QUARANTINE:
                continue
            if segments[0].startswith("_") or len(segments) < 3:  # loose files: only .tmp leftovers
                if _TMP.fullmatch(segments[-1]):
                    judge(name, mtime)
                continue
            folders.setdefault("/".join(segments[:2]), []).append(("/".join(segments[2:]), mtime))
        for folder, inside in sorted(folders.items()):
            if MANIFEST not in {inner for inner, _ in inside}:
                for inner, mtime in inside:  # no manifest: an attempt that died before it
                    judge(f"{folder}/{inner}", mtime)
                continue
            stage, key = folder.split("/")
            problem, unowned = self._unowned(stage, key, inside, now - grace_s)
            if problem:
                report.skipped.append(f"{folder}: {problem}")
                continue
            for inner, mtime in unowned:
                judge(f"{folder}/{inner}", mtime)
        return doomed

    def _unowned(self, stage: str, key: str, inside: list[tuple[str, float]], cutoff: float) -> tuple[str, list]:
        """(why gc must leave the artifact alone, or ""; the paths in its folder its
        manifest does not own). The manifest is verified whole when something old would go."""
        try:
            m = self.manifest(stage, key)  # a folder name that is not a store name fails here too
        except ArtifactMissing:
            return "manifest gone while gc looked (quarantined or replaced): left for the next gc", []
        except ValueError as exc:  # ArtifactCorrupt included
            return f"manifest fails verification: {exc}", []
        unowned = [(inner, mtime) for inner, mtime in inside if not owns(m, inner)]
        if any(mtime <= cutoff for _, mtime in unowned):
            found = self._verify_manifest(stage, key, m)  # the manifest judged, not a newer one
            if found:
                return f"manifest fails verification: {'; '.join(found)}", []
        return "", unowned

    # -- writing ----------------------------------------------------------------------

    def writer(self, stage: str, key: str, schema: pa.Schema | None = None) -> "ArtifactWriter":
        """Start one attempt at an artifact: parts are added one at a time, under names
        of this attempt's own, and nothing is visible until `commit` writes the manifest."""
        return ArtifactWriter(self, stage, key, schema)

    def write(
        self,
        stage: str,
        key: str,
        tables: Iterable[pa.Table] | pa.Table,
        meta: dict[str, Any] | None = None,
        files: dict[str, bytes] | None = None,
        schema: pa.Schema | None = None,
    ) -> ArtifactRef:
        """Write a whole artifact (parts, files, manifest) in one call."""
        w = self.writer(stage, key, schema)
        for table in [tables] if isinstance(tables, pa.Table) else tables:
            w.add(table)
        return w.commit(meta, files)

    # -- loose files under a non-artifact prefix (training checkpoints, say) --------------
    # Paths start with a "_" segment, which no stage name can, so they never mix with
    # artifacts; they have no manifest: whoever writes them marks completion its own way.

    def put_tree(self, rel: str, folder: Path) -> list[str]:
        """Upload every file under `folder` (subfolders included) to `rel/`, streaming
        from disk; returns their paths relative to `folder`."""
        names = [p.relative_to(folder).as_posix() for p in sorted(Path(folder).rglob("*")) if p.is_file()]
        for name in names:
            path = _loose_path(f"{rel}/{name}")
            self._call("write", path, self._backend.put_file, path, Path(folder) / name)
        return names

    def put_bytes(self, rel: str, data: bytes) -> None:
        path = _loose_path(rel)
        self._call("write", path, self._backend.put, path, data)

    def get_bytes(self, rel: str) -> bytes:
        """The file's bytes; KeyError when there is none."""
        path = _loose_path(rel)
        return self._call("read", path, self._backend.get, path)

    def list_tree(self, rel: str) -> list[str]:
        """Every file under `rel/`, as paths relative to it."""
        path = _loose_path(rel)
        return self._call("list", path, self._backend.list_tree, path)

    def get_tree(self, rel: str, names: Iterable[str], dest: Path) -> None:
        """Download `names` (paths relative to `rel/`) into the local folder `dest`."""
        for name in names:
            path = _loose_path(f"{rel}/{name}")
            self._call("read", path, self._backend.get_file, path, Path(dest) / name)

    def list_tree_stats(self, rel: str) -> list[tuple[str, int, float]]:
        """Every file under `rel/`: (path relative to it, size in bytes, modification time)."""
        path = _loose_path(rel)
        return self._call("list", path, self._backend.list_tree_stats, path)

    def delete_bytes(self, rel: str) -> None:
        """Remove one loose file (absent: nothing to do)."""
        path = _loose_path(rel)
        self._call("delete", path, self._backend.delete, path)

    def delete_tree(self, rel: str) -> None:
        path = _loose_path(rel)
        self._call("delete", path, self._backend.delete_tree, path)

    def loose_uri(self, rel: str) -> str:
        return self._backend.uri(_loose_path(rel))


class ArtifactWriter:
    """One attempt at an artifact. It writes only names carrying its own attempt id and
    deletes nothing, so concurrent attempts at one key cannot spoil each other."""

    def __init__(self, store: Store, stage: str, key: str, schema: pa.Schema | None):
        self.store, self.stage, self.key, self.schema = store, stage, key, schema
        self.base = store._dir(stage, key)
        self.attempt = uuid.uuid4().hex[:12]
        self.files_dir = files_dir(self.attempt)
        self.parts: list[dict[str, Any]] = []
        self.rows = 0
        self.digest = hashlib.sha256()
        self.files: dict[str, str] = {}
        self.started = time.time()

    def add(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema, check_metadata=False):
            table = table.cast(self.schema)
        name = part_name(self.attempt, len(self.parts))
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        rel = f"{self.base}/{name}"
        self.store._call("write", rel, self.store._backend.put, rel, buf.getvalue())
        part_digest = table_digest(table)
        self.digest.update(part_digest.encode())
        sha = hashlib.sha256(buf.getvalue()).hexdigest()
        self.parts.append({"name": name, "rows": table.num_rows, "digest": part_digest, "sha256": sha})
        self.rows += table.num_rows

    def add_dir(self, folder: Path) -> None:
        """Upload every file of a flat folder (a saved model, say), streaming from disk."""
        backend, call = self.store._backend, self.store._call
        for path in sorted(Path(folder).iterdir()):
            if path.is_file():
                rel = f"{self.base}/{self.files_dir}/{_file_name(path.name)}"
                call("write", rel, backend.put_file, rel, path)
                self.files[path.name] = _file_digest(path)

    def commit(self, meta: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> ArtifactRef:
        backend, call = self.store._backend, self.store._call
        clash = sorted(RESERVED & set(meta or {}))
        if clash:  # the writer's own fields are what readers check: a caller may not set them
            raise ValueError(f"manifest metadata may not set {', '.join(clash)}: the writer sets them")
        extra = dict(self.files)
        for name, data in (files or {}).items():
            rel = f"{self.base}/{self.files_dir}/{_file_name(name)}"
            call("write", rel, backend.put, rel, data)
            extra[name] = hashlib.sha256(data).hexdigest()
        manifest = {
            "format": MANIFEST_FORMAT,
            "stage": self.stage,
            "key": self.key,
            "rows": self.rows,
            "digest": self.digest.hexdigest(),
            "digest_format": DIGEST_FORMAT,
            "attempt": self.attempt,
            "parts": self.parts,
            "files": extra,
            "files_dir": self.files_dir,
            "schema": _schema_to_json(self.schema) if self.schema is not None else [],
            "written_at": time.time(),
            "write_s": round(time.time() - self.started, 3),
            **(meta or {}),
        }
        rel = f"{self.base}/{MANIFEST}"
        call("write", rel, backend.put, rel, json.dumps(manifest, indent=1, default=str).encode())
        return ArtifactRef(uri=self.store.uri(self.stage, self.key), stage=self.stage, key=self.key, rows=self.rows)


def _loose_path(rel: str) -> str:
    """A relative path of safe segments whose first segment starts with "_": it cannot
    climb out of the root, nor land inside an artifact."""
    segments = rel.split("/") if isinstance(rel, str) else [""]
    if not segments[0].startswith("_") or not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise ValueError(f"store path {rel!r} is not allowed (safe segments, the first starting with '_')")
    return rel


def _file_name(name: str) -> str:
    if not _FILE.fullmatch(name) or name == MANIFEST:
        raise ValueError(f"artifact file name {name!r} is not allowed")
    return name


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- table digest -------------------------------------------------------------------------


def arrow_owned(data: bytes) -> pa.Buffer:
    """`data` copied into memory Arrow allocated, holding no Python object.

    Why: Arrow reads and decodes on its own native threads. Handed a Python object (a
    BytesIO, or bytes wrapped by `py_buffer`), such a thread takes the GIL to read it or
    to drop the last reference, and when that happens while the interpreter is exiting it
    aborts the process (exit 134: "terminate called without an active exception", or
    "PyGILState_Release ... finalizing"), after a run that succeeded. An all-hit `t2g run`
    ends right after reading artifacts, so it is where this showed. One copy of a part is
    cheap next to decoding it. tests/t2g/test_sources_security.py reproduces the abort."""
    out = pa.BufferOutputStream()
    out.write(data)
    return out.getvalue()


def table_digest(table: pa.Table) -> str:
    """sha256 of a table's column names, logical types and values: the same after a
    Parquet write and read, whatever the chunking, slicing, schema metadata, dictionary
    encoding, nullability flags or list field names (Parquet reads `list<item>` back as
    `list<element>`), and whatever bytes sit under null slots.

    Each column is taken apart into null-free leaves (the positions of its nulls, list
    lengths, the values of struct children and list elements), and only the leaves' live
    bytes are hashed, never Arrow buffers as a whole, whose sizes and offsets vary."""
    h = hashlib.sha256()
    h.update(repr((table.num_rows, [(f.name, _type_name(f.type)) for f in table.schema])).encode())
    for column in table.columns:
        if pa.types.is_dictionary(column.type):  # chunks may carry different dictionaries
            column = column.cast(column.type.value_type)
        if column.num_chunks == 1:
            array = column.chunk(0)  # no copy
        else:
            array = pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
        for leaf in _leaves(array):
            h.update(len(leaf).to_bytes(8, "little"))
            for block in _leaf_bytes(leaf):
                h.update(block)
    return h.hexdigest()


_table_digest = table_digest  # the earlier private name, still imported by tests/faults


def _type_name(t: pa.DataType) -> str:
    """A type's name without what Parquet does not keep (list field names, nullability,
    dictionary encoding)."""
    if pa.types.is_dictionary(t):
        return _type_name(t.value_type)
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name!r}: {_type_name(f.type)}" for f in t) + ">"
    if pa.types.is_map(t):
        return f"map<{_type_name(t.key_type)}, {_type_name(t.item_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{_type_name(t.value_type)}, {t.list_size}>"
    if pa.types.is_large_list(t):
        return f"large_list<{_type_name(t.value_type)}>"
    if pa.types.is_list(t):
        return f"list<{_type_name(t.value_type)}>"
    return str(t)


def _leaves(array: pa.Array) -> Iterator[pa.Array]:
    """Null-free arrays that together hold `array`'s content: its null positions, then
    (without the null slots) list lengths and the leaves of children."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    yield pc.indices_nonzero(array.is_null())
    array = array.drop_null()
    t = array.type
    if pa.types.is_struct(t):
        for child in array.flatten():  # flatten() honours the struct's own offset
            yield from _leaves(child)
    elif pa.types.is_fixed_size_list(t):
        yield from _leaves(array.flatten())
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        offsets = array.offsets
        yield pc.subtract(offsets.slice(1), offsets.slice(0, len(offsets) - 1))
        start, end = (offsets[0].as_py(), offsets[-1].as_py()) if len(array) else (0, 0)
        yield from _leaves(array.values.slice(start, end - start))
    elif not pa.types.is_null(t):
        yield array


def _leaf_bytes(array: pa.Array) -> Iterator[Any]:
    """The live bytes of a null-free leaf: independent of its offset, buffer sizes and
    whether it carries an (all-valid) validity bitmap."""
    t = array.type
    if pa.types.is_boolean(t):
        array = array.cast(pa.uint8())  # a bitmap's spare bits may hold anything
    elif pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        array = array.cast(pa.large_binary())
    t, n, off = array.type, len(array), array.offset
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        width = 8 if pa.types.is_large_string(t) or pa.types.is_large_binary(t) else 4
        offsets = array.buffers()[1]
        first, last = (int.from_bytes(offsets[(off + i) * width : (off + i + 1) * width], "little", signed=True) for i in (0, n))
        yield from _leaf_bytes(pc.binary_length(array))
        if last > first:
            yield array.buffers()[2][first:last]
        return
    width = t.bit_width // 8
    if n:
        yield array.buffers()[1][off * width : (off + n) * width]


def _schema_to_json(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def _schema_from_manifest(m: dict[str, Any]) -> pa.Schema:
    # Only used to shape an empty table; types come back as strings, good enough for
    # the common scalar types our stages write.
    fields = []
    for f in m["schema"]:
        try:
            t = pa.type_for_alias(f["type"])
        except ValueError:
            t = pa.string()
        fields.append(pa.field(f["name"], t))
    return pa.schema(fields)
