"""What --model may name: a model folder or hub name, or what `t2g run` prints for a model
stage, an artifact of the store (its folder, `.t2g/store/grpo/<key>`, or its URI,
`file:///…/grpo/<key>` or `s3://bucket/prefix/grpo/<key>`). An artifact is resolved
through its manifest (t2g.store.Store.materialize: every file checked against its digest,
an S3 one downloaded once), to the folder that holds the model's files (`files/<attempt>/`
under the artifact, which is why the artifact folder itself "has no config.json")."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from t2g.store import MANIFEST, Store


class ModelRefError(ValueError):
    """--model names an artifact that is not a usable model; the message says why."""


def artifact_model(value: str | Path) -> Path | str:
    """The local folder of the model `value` names, or `value` itself when it names no
    store artifact (a model folder, a hub name: the loader reports what is wrong)."""
    text = str(value)
    scheme = urlparse(text).scheme
    if scheme in ("file", "s3"):
        root, stage, key = _split_uri(text)
        return _materialize(Store(root), stage, key, text)
    path = Path(text)
    if (path / MANIFEST).is_file():
        folder = path.resolve()
        return _materialize(Store(f"file://{folder.parent.parent}"), folder.parent.name, folder.name, text)
    return value


def _split_uri(uri: str) -> tuple[str, str, str]:
    head, _, key = uri.rstrip("/").rpartition("/")
    root, _, stage = head.rpartition("/")
    if not key or not stage or root.endswith(":/") and not root.endswith("://"):
        raise ModelRefError(f"--model {uri}: an artifact URI ends in <stage>/<key>, e.g. s3://bucket/t2g/grpo/<key>")
    return root, stage, key


def _materialize(store: Store, stage: str, key: str, given: str) -> Path:
    try:
        manifest = store.manifest(stage, key)
    except Exception as exc:  # missing, corrupt or unreachable: say which artifact
        raise ModelRefError(f"--model {given}: no finished artifact there ({exc})") from None
    if manifest.get("kind") != "model":
        raise ModelRefError(
            f"--model {given}: the {stage} artifact is a table, not a model: give a model stage's artifact (sft, grpo)"
        )
    return store.materialize(stage, key)
