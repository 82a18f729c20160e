"""Where the bytes live: a local folder (`FileBackend`) or an S3 bucket (`S3Backend`).

Roots: `file://<dir>` (relative paths resolve against the working directory) and
`s3://bucket/prefix`. S3 settings come from the standard AWS environment
(`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), or from
keyword arguments a caller resolved elsewhere (e.g. a Prefect block): never from the recipe.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

from t2g.store.digests import file_digest
from t2g.store.errors import StoreFatal


class FileBackend:
    """Local folder backend."""

    read_concurrency = 1  # Store.get_many: a local read is microseconds, threads only contend

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

    def _open(self, rel: str):
        """`rel` opened for reading, when it is a regular file (through a symlink too);
        KeyError otherwise, as for an absent file. A FIFO or device planted in the store
        (or linked from it) would block a reader forever or never end (/dev/zero): it is no
        artifact file, so readers see it missing (corrupt, quarantined, recomputed)."""
        try:
            # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
            fd = os.open(self._path(rel), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(rel) from None
        fh = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            fh.close()
            raise KeyError(rel)
        return fh

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
        with self._open(rel) as src:

            def fill(tmp: Path) -> None:
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)

            self._replace_from(dest, fill)

    def local_path(self, rel: str) -> Path | None:
        return self._path(rel)

    def get(self, rel: str) -> bytes:
        with self._open(rel) as fh:
            return fh.read()

    def digest(self, rel: str) -> str:
        with self._open(rel) as fh:
            return file_digest(fh)

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


class S3Backend:
    """S3 backend (AWS S3, MinIO, SeaweedFS) through boto3."""

    read_concurrency = 16  # Store.get_many: each GET is a round trip; boto3 clients are thread-safe

    def __init__(self, bucket: str, prefix: str, create_bucket: bool = True, **client_kwargs: Any):
        import boto3.session
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        # Bounded timeouts and boto's own retries: an outage becomes an error quickly,
        # and the task's retry policy decides what happens next.
        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
        )
        # A session of our own: its public get_credentials() tells launched ranks what this
        # client signs with, wherever the keys came from (environment, profile, a block).
        session_keys = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name")
        self.session = boto3.session.Session(**{k: v for k, v in client_kwargs.items() if k in session_keys})
        self._client_args = (config, {k: v for k, v in client_kwargs.items() if k not in session_keys})
        self._client_lock = threading.Lock()
        self._bucket_checked = False
        self._create_bucket = create_bucket

    @cached_property
    def client(self) -> Any:
        """Made on first use: a client costs ~0.2 s of CPU (botocore loads the S3 service
        model), and many stores (a URI check, a planner that finds everything finished)
        never send a request. Locked: the shards' threads share one store."""
        with self._client_lock:
            if "client" in self.__dict__:  # another thread made it while this one waited
                return self.__dict__["client"]
            config, others = self._client_args
            return self.session.client("s3", config=config, **others)

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
                raise StoreFatal(
                    f"bucket {self.bucket!r} does not exist and this store may not create it: create it"
                ) from exc
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc2:
                if str(exc2.response.get("Error", {}).get("Code", "")) not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
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
            names += [
                (o["Key"][len(prefix) :], int(o["Size"]), o["LastModified"].timestamp())
                for o in page.get("Contents", [])
            ]
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
