"""`Store`: artifacts under one root URI, read and checked against their manifests,
quarantined when corrupt, garbage-collected, plus loose files (see the package's docstring)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from t2g.manifest import MANIFEST, owns
from t2g.manifest import problems as manifest_problems
from t2g.store.backends import FileBackend, S3Backend
from t2g.store.digests import arrow_owned, file_digest, table_digest
from t2g.store.errors import ArtifactCorrupt, ArtifactMissing, StoreError, StoreFatal, fatal_reason
from t2g.store.paths import QUARANTINE, STORE_NAME, TMP_FILE, artifact_dir, check_file_name, check_name, loose_path
from t2g.store.writer import ArtifactRef, ArtifactWriter

log = logging.getLogger("t2g.store")


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)  # URIs removed (or, dry run, that would be)
    kept_fresh: list[str] = field(default_factory=list)  # unlisted but younger than the grace period
    # "<stage>/<key>: manifest fails verification: <why>": left alone whole
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False


class Store:
    """Artifacts under one root URI. Safe to share between processes: every write of a
    part or manifest is atomic (local rename, S3 single PUT), and writers never delete."""

    def __init__(self, root: str, **s3_kwargs: Any):
        self.root = root
        parsed = urlparse(root)
        if parsed.scheme == "file" or (parsed.scheme == "" and root):
            path = root[len("file://") :] if root.startswith("file://") else root
            self._backend: FileBackend | S3Backend = FileBackend(Path(path).expanduser())
        elif parsed.scheme == "s3":
            if not parsed.netloc:
                raise ValueError(f"store {root!r}: an S3 root needs a bucket, e.g. s3://bucket/prefix")
            prefix = parsed.path.strip("/")
            if any(seg in ("..", ".") for seg in prefix.split("/")):
                raise ValueError(f"store {root!r}: the prefix may not contain '.' or '..' segments")
            self._backend = S3Backend(parsed.netloc, prefix, **s3_kwargs)
        else:
            raise ValueError(f"store {root!r}: use file://<dir> or s3://bucket/prefix")

    # -- paths ------------------------------------------------------------------------

    @staticmethod
    def _dir(stage: str, key: str) -> str:
        return artifact_dir(stage, key)

    def environment(self) -> dict[str, str]:
        """Environment variables with which another process (a launched rank) opens this
        same store as it is opened here: endpoint, region and credentials, wherever they
        came from. Empty for a local folder. Secrets: pass them in an environment, never
        on a command line or in a log."""
        backend = self._backend
        return backend.environment() if isinstance(backend, S3Backend) else {}

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
            reason = fatal_reason(exc)
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
        return f"{self._dir(stage, key)}/{m['files_dir']}/{check_file_name(name)}"

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
            raise ArtifactCorrupt(
                f"artifact {self.uri(stage, key)}: file {name}: digest mismatch (read {got[:12]}, manifest {want[:12]})"
            )
        return data

    def _file_problems(self, stage: str, key: str, m: dict[str, Any], local: Path | None = None) -> list[str]:
        """The extra files that are missing or differ from their manifest digest (read from
        `local`, a downloaded copy, when given)."""
        problems = []
        for name, want in m.get("files", {}).items():
            rel = self._file_rel(stage, key, m, name)
            try:
                got = (
                    file_digest(local / name)
                    if local is not None
                    else self._call("read", rel, self._backend.digest, rel)
                )
            except (KeyError, FileNotFoundError):
                problems.append(f"file {name}: missing")
                continue
            if got != want:
                problems.append(f"file {name}: digest mismatch (read {got[:12]}, manifest {str(want)[:12]})")
        folder = f"{self._dir(stage, key)}/{m['files_dir']}"
        if local is None and self._backend.local_path(folder) is not None:
            # A store that serves the folder in place (materialize) loads the whole folder: a
            # file planted beside the listed ones (generation_config.json) would change what the model does.
            names = self._backend.list(folder)
            problems += [f"file {n[:64]!r}: not in the manifest" for n in names if n not in m["files"]]
        return problems

    def materialize(self, stage: str, key: str, cache: Path | None = None) -> Path:
        """A local folder holding the artifact's files (a model, say), every file checked
        against its manifest digest. A local store serves its own folder; an S3 store
        downloads once into `cache` (default ~/.cache/t2g), marking a finished download so
        a partial one is redone."""
        m = self.manifest(stage, key)
        base = self._dir(stage, key)
        folder = f"{base}/{m['files_dir']}"
        local = served = self._backend.local_path(folder)  # a local store's own folder, checked in place
        if local is None:
            parsed = urlparse(self.root)
            local = (cache or Path.home() / ".cache" / "t2g") / parsed.netloc / parsed.path.strip("/") / folder
            done = local / ".complete"
            if not (
                done.exists() and done.read_text() == m["digest"] and not self._file_problems(stage, key, m, local)
            ):
                for name in m.get("files", {}):
                    rel = self._file_rel(stage, key, m, name)
                    try:
                        self._call("read", rel, self._backend.get_file, rel, local / name)
                    except KeyError:
                        raise ArtifactCorrupt(f"artifact {self.uri(stage, key)}: file {name}: missing") from None
                done.write_text(m["digest"])
        problems = self._file_problems(stage, key, m, None if served else local)
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
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = loose_path(f"{QUARANTINE}/{stage}/{key}-{stamp}")
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
            if (
                len(segments) == 3
                and segments[2] == MANIFEST
                and STORE_NAME.fullmatch(segments[0])
                and STORE_NAME.fullmatch(segments[1])
            ):
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
                if TMP_FILE.fullmatch(segments[-1]):
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

    def writer(self, stage: str, key: str, schema: pa.Schema | None = None) -> ArtifactWriter:
        """Start one attempt at an artifact: parts are added one at a time, under names
        of this attempt's own, and nothing is visible until `commit` writes the manifest."""
        return ArtifactWriter(stage, key, schema, backend=self._backend, call=self._call)

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
            path = loose_path(f"{rel}/{name}")
            self._call("write", path, self._backend.put_file, path, Path(folder) / name)
        return names

    def put_bytes(self, rel: str, data: bytes) -> None:
        path = loose_path(rel)
        self._call("write", path, self._backend.put, path, data)

    def get_bytes(self, rel: str) -> bytes:
        """The file's bytes; KeyError when there is none."""
        path = loose_path(rel)
        return self._call("read", path, self._backend.get, path)

    def get_many(self, rels: Sequence[str]) -> list[bytes | None]:
        """Many small files at once, in order; None for each that is absent. As many at a
        time as the backend gains from (one for a local folder, where threads only fight
        over the interpreter; a pool for S3, where each is a round trip)."""

        def one(rel: str) -> bytes | None:
            try:
                return self.get_bytes(rel)
            except KeyError:
                return None

        threads = min(self._backend.read_concurrency, len(rels))
        if threads <= 1:
            return [one(rel) for rel in rels]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, rels))

    def list_tree(self, rel: str) -> list[str]:
        """Every file under `rel/`, as paths relative to it."""
        path = loose_path(rel)
        return self._call("list", path, self._backend.list_tree, path)

    def get_tree(self, rel: str, names: Iterable[str], dest: Path) -> None:
        """Download `names` (paths relative to `rel/`) into the local folder `dest`."""
        for name in names:
            path = loose_path(f"{rel}/{name}")
            self._call("read", path, self._backend.get_file, path, Path(dest) / name)

    def list_tree_stats(self, rel: str) -> list[tuple[str, int, float]]:
        """Every file under `rel/`: (path relative to it, size in bytes, modification time)."""
        path = loose_path(rel)
        return self._call("list", path, self._backend.list_tree_stats, path)

    def delete_bytes(self, rel: str) -> None:
        """Remove one loose file (absent: nothing to do)."""
        path = loose_path(rel)
        self._call("delete", path, self._backend.delete, path)

    def delete_tree(self, rel: str) -> None:
        path = loose_path(rel)
        self._call("delete", path, self._backend.delete_tree, path)

    def loose_uri(self, rel: str) -> str:
        return self._backend.uri(loose_path(rel))


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
