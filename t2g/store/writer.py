"""Writing one artifact: `ArtifactWriter`, one attempt with its own id, and the
`ArtifactRef` it returns once its manifest has landed."""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from t2g.manifest import DIGEST_FORMAT, MANIFEST, MANIFEST_FORMAT, RESERVED, files_dir, part_name
from t2g.store.backends import FileBackend, S3Backend
from t2g.store.digests import file_digest, table_digest
from t2g.store.paths import artifact_dir, check_file_name


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
    def from_dict(cls, d: dict[str, Any]) -> ArtifactRef:
        return cls(uri=str(d["uri"]), stage=str(d["stage"]), key=str(d["key"]), rows=int(d["rows"]))


class ArtifactWriter:
    """One attempt at an artifact. It writes only names carrying its own attempt id and
    deletes nothing, so concurrent attempts at one key cannot spoil each other.

    Made by `Store.writer`, which hands it the store's backend and `call`, the wrapper that
    turns a failed backend call into a StoreError or StoreFatal naming the URI."""

    def __init__(
        self,
        stage: str,
        key: str,
        schema: pa.Schema | None,
        *,
        backend: FileBackend | S3Backend,
        call: Callable[..., Any],
    ):
        self.stage, self.key, self.schema = stage, key, schema
        self.backend, self.call = backend, call
        self.base = artifact_dir(stage, key)
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
        self.call("write", rel, self.backend.put, rel, buf.getvalue())
        part_digest = table_digest(table)
        self.digest.update(part_digest.encode())
        sha = hashlib.sha256(buf.getvalue()).hexdigest()
        self.parts.append({"name": name, "rows": table.num_rows, "digest": part_digest, "sha256": sha})
        self.rows += table.num_rows

    def add_dir(self, folder: Path) -> None:
        """Upload every file of a flat folder (a saved model, say), streaming from disk."""
        backend, call = self.backend, self.call
        for path in sorted(Path(folder).iterdir()):
            if path.is_file():
                rel = f"{self.base}/{self.files_dir}/{check_file_name(path.name)}"
                call("write", rel, backend.put_file, rel, path)
                self.files[path.name] = file_digest(path)

    def commit(self, meta: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> ArtifactRef:
        backend, call = self.backend, self.call
        clash = sorted(RESERVED & set(meta or {}))
        if clash:  # the writer's own fields are what readers check: a caller may not set them
            raise ValueError(f"manifest metadata may not set {', '.join(clash)}: the writer sets them")
        extra = dict(self.files)
        for name, data in (files or {}).items():
            rel = f"{self.base}/{self.files_dir}/{check_file_name(name)}"
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
        return ArtifactRef(uri=backend.uri(self.base), stage=self.stage, key=self.key, rows=self.rows)


def _schema_to_json(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]
