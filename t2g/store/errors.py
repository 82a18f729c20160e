"""What can go wrong in the store, and whether a retry may cure it.

A storage error that a retry may cure (network, service down) is a `StoreError`; one that
it cannot (disk full, quota, permission denied, read-only file system, a missing S3 bucket
that may not be created, bad credentials) is a `StoreFatal`, which the orchestration does
not retry. A finished artifact that disagrees with its manifest is `ArtifactCorrupt`.
"""

from __future__ import annotations

import errno


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


def fatal_reason(exc: BaseException) -> str | None:
    """Why `exc` cannot be cured by a retry, or None when it may be."""
    if isinstance(exc, OSError) and exc.errno in _FATAL_ERRNO:
        return _FATAL_ERRNO[exc.errno]
    response = getattr(exc, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        return _FATAL_S3.get(str(response.get("Error", {}).get("Code", "")))
    return None
