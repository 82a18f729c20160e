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

Modules: `store` (the `Store`: reading, checking, quarantine, gc, loose files), `writer`
(`ArtifactWriter`, `ArtifactRef`), `backends` (local folder, S3), `digests` (table and
file digests), `paths` (what a name or path in the store may be), `errors`. The names
below are re-exported so callers keep importing them from `t2g.store`.
"""

from __future__ import annotations

from t2g.manifest import MANIFEST, MANIFEST_FORMAT
from t2g.store.backends import FileBackend, S3Backend
from t2g.store.digests import arrow_owned, file_digest, table_digest
from t2g.store.errors import ArtifactCorrupt, ArtifactMissing, StoreError, StoreFatal
from t2g.store.paths import QUARANTINE, check_file_name, check_name, loose_path
from t2g.store.store import GcReport, Store
from t2g.store.writer import ArtifactRef, ArtifactWriter

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "QUARANTINE",
    "ArtifactCorrupt",
    "ArtifactMissing",
    "ArtifactRef",
    "ArtifactWriter",
    "FileBackend",
    "GcReport",
    "S3Backend",
    "Store",
    "StoreError",
    "StoreFatal",
    "arrow_owned",
    "check_file_name",
    "check_name",
    "file_digest",
    "loose_path",
    "table_digest",
]
