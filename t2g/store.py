"""The artifact store: Parquet parts plus a manifest, under a local folder or S3.

Layout: `<root>/<stage>/<key>/part-NNNNN.parquet`, extra files, then `_manifest.json`
written last. An artifact without a manifest does not exist: readers never see it, and
the next attempt clears it and writes it again. Readers follow the manifest's part list,
so a stray part from a killed attempt is never read. Paths whose first segment starts with
"_" (no stage name can) hold loose files that are not artifacts, e.g. training checkpoints.

Roots: `file://<dir>` (relative paths resolve against the working directory) and
`s3://bucket/prefix`. S3 settings come from the standard AWS environment
(`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), or from
keyword arguments a caller resolved elsewhere (e.g. a Prefect block): never from the recipe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "_manifest.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


class StoreError(RuntimeError):
    """A storage failure (network, permissions, service down); transient ones are retried."""


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


def check_name(value: str, what: str) -> str:
    """Stage names and keys become path segments: allow only a safe alphabet, so nothing
    from a recipe or from data can climb out of the root (`..`, `/`, `%2f`, `s3://`)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid store name (lowercase letters, digits, '-', '_'; at most 64)")
    return value


class _Files:
    """Local folder backend."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def put(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a reader sees the old file or the whole new one

    def put_file(self, rel: str, src: Path) -> None:
        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        shutil.copyfile(src, tmp)
        os.replace(tmp, path)

    def get_file(self, rel: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        try:
            shutil.copyfile(self._path(rel), tmp)
        except FileNotFoundError:
            raise KeyError(rel) from None
        os.replace(tmp, dest)

    def local_path(self, rel: str) -> Path | None:
        return self._path(rel)

    def get(self, rel: str) -> bytes:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            raise KeyError(rel) from None

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def delete_prefix(self, rel: str) -> None:
        folder = self._path(rel)
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_file():
                    child.unlink()

    def list(self, rel: str) -> list[str]:
        folder = self._path(rel)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def list_tree(self, rel: str) -> list[str]:
        folder = self._path(rel)
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    def delete_tree(self, rel: str) -> None:
        shutil.rmtree(self._path(rel), ignore_errors=True)

    def uri(self, rel: str) -> str:
        return self._path(rel).resolve().as_uri()


class _S3:
    """S3 backend (AWS S3, MinIO, SeaweedFS) through boto3."""

    def __init__(self, bucket: str, prefix: str, create_bucket: bool = True, **client_kwargs: Any):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        # Bounded timeouts and boto's own retries: an outage becomes an error quickly,
        # and the task's retry policy decides what happens next.
        config = Config(
            connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}
        )
        self.client = boto3.client("s3", config=config, **client_kwargs)
        self._bucket_checked = False
        self._create_bucket = create_bucket

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound") or not self._create_bucket:
                raise
            self.client.create_bucket(Bucket=self.bucket)
        self._bucket_checked = True

    def put(self, rel: str, data: bytes) -> None:
        self._ensure_bucket()
        self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)

    def put_file(self, rel: str, src: Path) -> None:
        self._ensure_bucket()
        self.client.upload_file(str(src), self.bucket, self._key(rel))  # multipart for big files

    def get_file(self, rel: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        self.client.download_file(self.bucket, self._key(rel), str(tmp))
        os.replace(tmp, dest)

    def local_path(self, rel: str) -> Path | None:
        return None

    def get(self, rel: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
                raise KeyError(rel) from None
            raise

    def exists(self, rel: str) -> bool:
        try:
            self.get(rel)  # manifests are small; one GET avoids HEAD's ambiguous 403/404
        except KeyError:
            return False
        return True

    def list(self, rel: str) -> list[str]:
        return [n for n in self.list_tree(rel) if "/" not in n]

    def list_tree(self, rel: str) -> list[str]:
        self._ensure_bucket()
        prefix = self._key(rel).rstrip("/") + "/"
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            names += [obj["Key"][len(prefix) :] for obj in page.get("Contents", [])]
        return sorted(names)

    def delete_tree(self, rel: str) -> None:
        names = self.list_tree(rel)
        for i in range(0, len(names), 1000):
            objects = [{"Key": self._key(f"{rel}/{n}")} for n in names[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def delete_prefix(self, rel: str) -> None:
        names = self.list(rel)
        for i in range(0, len(names), 1000):
            objects = [{"Key": self._key(f"{rel}/{n}")} for n in names[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"


class Store:
    """Artifacts under one root URI. Safe to share between processes: every write of a
    part or manifest is atomic (local rename, S3 single PUT)."""

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

    def uri(self, stage: str, key: str) -> str:
        return self._backend.uri(self._dir(stage, key))

    # -- calls that can fail on the network, wrapped so the error names the URI ----------

    def _call(self, what: str, rel: str, fn, *args):
        try:
            return fn(*args)
        except KeyError:
            raise
        except Exception as exc:
            raise StoreError(f"store {what} failed for {self._backend.uri(rel)}: {type(exc).__name__}: {exc}") from exc

    # -- reading ----------------------------------------------------------------------

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        rel = f"{self._dir(stage, key)}/{MANIFEST}"
        try:
            return json.loads(self._call("read", rel, self._backend.get, rel))
        except KeyError:
            raise ArtifactMissing(f"{stage}/{key}") from None

    def has(self, stage: str, key: str) -> bool:
        rel = f"{self._dir(stage, key)}/{MANIFEST}"
        return bool(self._call("read", rel, self._backend.exists, rel))

    def ref(self, stage: str, key: str) -> ArtifactRef | None:
        """The finished artifact's reference, or None when there is none."""
        try:
            m = self.manifest(stage, key)
        except ArtifactMissing:
            return None
        return ArtifactRef(uri=self.uri(stage, key), stage=stage, key=key, rows=int(m["rows"]))

    def iter_parts(self, stage: str, key: str) -> Iterator[pa.Table]:
        """Each part in order, one at a time (bounded memory for large artifacts)."""
        m = self.manifest(stage, key)
        for part in m["parts"]:
            rel = f"{self._dir(stage, key)}/{part['name']}"
            data = self._call("read", rel, self._backend.get, rel)
            yield pq.read_table(io.BytesIO(data))

    def read(self, stage: str, key: str) -> pa.Table:
        m = self.manifest(stage, key)
        parts = list(self.iter_parts(stage, key))
        if not parts:
            return pa.schema([]).empty_table() if not m.get("schema") else _schema_from_manifest(m).empty_table()
        return pa.concat_tables(parts)

    def read_file(self, stage: str, key: str, name: str) -> bytes:
        self.manifest(stage, key)  # only finished artifacts are readable
        rel = f"{self._dir(stage, key)}/{_file_name(name)}"
        return self._call("read", rel, self._backend.get, rel)

    def materialize(self, stage: str, key: str, cache: Path | None = None) -> Path:
        """A local folder holding the artifact's files (a model, say). A local store
        serves its own folder; an S3 store downloads once into `cache` (default
        ~/.cache/t2g), marking a finished download so a partial one is redone."""
        m = self.manifest(stage, key)
        base = self._dir(stage, key)
        local = self._backend.local_path(base)
        if local is not None:
            return local
        parsed = urlparse(self.root)
        dest = (cache or Path.home() / ".cache" / "t2g") / parsed.netloc / parsed.path.strip("/") / base
        done = dest / ".complete"
        if done.exists() and done.read_text() == m["digest"]:
            return dest
        for name in m.get("files", {}):
            rel = f"{base}/{_file_name(name)}"
            self._call("read", rel, self._backend.get_file, rel, dest / name)
        done.write_text(m["digest"])
        return dest

    # -- writing ----------------------------------------------------------------------

    def writer(self, stage: str, key: str, schema: pa.Schema | None = None) -> "ArtifactWriter":
        """Start an artifact: clears leftovers of an earlier attempt; parts are added one
        at a time and nothing is visible until `commit` writes the manifest."""
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

    def delete_tree(self, rel: str) -> None:
        path = _loose_path(rel)
        self._call("delete", path, self._backend.delete_tree, path)

    def loose_uri(self, rel: str) -> str:
        return self._backend.uri(_loose_path(rel))


class ArtifactWriter:
    def __init__(self, store: Store, stage: str, key: str, schema: pa.Schema | None):
        self.store, self.stage, self.key, self.schema = store, stage, key, schema
        self.base = store._dir(stage, key)
        self.parts: list[dict[str, Any]] = []
        self.rows = 0
        self.digest = hashlib.sha256()
        self.files: dict[str, str] = {}
        self.started = time.time()
        backend = store._backend
        store._call("clear", self.base, backend.delete_prefix, self.base)

    def add(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema, check_metadata=False):
            table = table.cast(self.schema)
        name = f"part-{len(self.parts):05d}.parquet"
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        rel = f"{self.base}/{name}"
        self.store._call("write", rel, self.store._backend.put, rel, buf.getvalue())
        part_digest = _table_digest(table)
        self.digest.update(part_digest.encode())
        self.parts.append({"name": name, "rows": table.num_rows, "digest": part_digest})
        self.rows += table.num_rows

    def add_dir(self, folder: Path) -> None:
        """Upload every file of a flat folder (a saved model, say), streaming from disk."""
        backend, call = self.store._backend, self.store._call
        for path in sorted(Path(folder).iterdir()):
            if path.is_file():
                rel = f"{self.base}/{_file_name(path.name)}"
                call("write", rel, backend.put_file, rel, path)
                self.files[path.name] = _file_digest(path)

    def commit(self, meta: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> ArtifactRef:
        backend, call = self.store._backend, self.store._call
        extra = dict(self.files)
        for name, data in (files or {}).items():
            rel = f"{self.base}/{_file_name(name)}"
            call("write", rel, backend.put, rel, data)
            extra[name] = hashlib.sha256(data).hexdigest()
        manifest = {
            "stage": self.stage,
            "key": self.key,
            "rows": self.rows,
            "digest": self.digest.hexdigest(),
            "parts": self.parts,
            "files": extra,
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


def _table_digest(table: pa.Table) -> str:
    """Digest of the data itself (Arrow IPC of the rows), not of Parquet bytes, which
    carry writer metadata."""
    table = table.replace_schema_metadata(None).combine_chunks()  # chunking is not content
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


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
