"""Fingerprints of what a recipe names outside the store: data files and folders, model
folders, hub models. Cache keys include them, so a key follows the content, not the name.

- A data file or folder: its bytes, streamed (a folder: its sorted relative paths and
  each file's digest). Data is read whole by the stage anyway.
- A model folder: reading 140 GB of weights on every run is not an option. Its files
  under 1 MiB (config, tokenizer, generation settings, weight index) are digested whole;
  larger files (the weights) by path, size and modification time: new weights written
  in place change the modification time, so only a deliberate `touch -d` could hide
  them. A folder that t2g materialised from the store carries the manifest's digests.
- A hub model or dataset: its name plus the pinned revision; an unpinned one has no
  fingerprint (None), and whoever keys on it must never treat it as a cache hit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SMALL = 1 << 20  # files up to this size are digested whole in a model folder
_BLOCK = 1 << 20


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def data_digest(path: str | Path) -> str:
    """The bytes of a file, or of every file under a folder with its relative path."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    h = hashlib.sha256()
    for f in _files(path):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + file_digest(f).encode() + b"\0")
    return h.hexdigest()


def model_digest(folder: str | Path) -> str:
    """A local model folder, cheaply (see the module docstring)."""
    folder = Path(folder)
    manifest = folder / "_manifest.json"
    if manifest.is_file():  # materialised from the store: its digests are the content's
        files = json.loads(manifest.read_text()).get("files", {})
        return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    h = hashlib.sha256()
    for f in _files(folder):
        stat = f.stat()
        if stat.st_size <= SMALL:
            part = file_digest(f)
        else:
            part = f"{stat.st_size}:{stat.st_mtime_ns}"
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + part.encode() + b"\0")
    return h.hexdigest()


def model_identity(model: str, revision: str | None = None) -> str | None:
    """What names a model's weights: a local folder by `model_digest`, a hub name by its
    pinned revision (None when unpinned: it can change under the same name)."""
    if Path(model).expanduser().is_dir():
        return "dir:" + model_digest(Path(model).expanduser())
    return f"hub:{model}@{revision}" if revision else None
