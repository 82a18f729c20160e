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

Every stage key computes these (several times per stage and run), so a data digest is
remembered for the process by the file's stat (inode, size, mtime, ctime) and recomputed
when any of them moves. A file changed in the last seconds is not remembered: a second
write within the file system's timestamp granularity would keep the same stat (git's
"racily clean" entries, handled the same way).

The registry's `external` hooks (t2g.stages) are at the end: for each stage, the name and
fingerprint of everything its recipe section names outside the store.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from t2g.config import (
    REASONER,
    TEACHER,
    AnnotatedSource,
    CollectConfig,
    EvaluateConfig,
    HFSource,
    JsonlSource,
    LLMSection,
    ParquetSource,
    SftConfig,
    TextSource,
)
from t2g.llm import registry
from t2g.sources.datafiles import folder_entries, system_problem

TINY = "tiny"  # sft.model built from the config (t2g.training.TINY; that module loads trainers)
SMALL = 1 << 20  # files up to this size are digested whole in a model folder
_BLOCK = 1 << 20
RACY_S = 2.0  # a file modified this recently is digested again on every call
MISSING = "missing"  # the fingerprint of a named input that does not exist (yet)
# One nonce per run (this process and the processes it starts, such as the ranks of a
# launched stage, which must compute the runner's key): mixed into the key of a stage
# with an input that has no fingerprint, so no later run finds that stage's artifact.
NONCE_ENV = "T2G_RUN_NONCE"

_memo: dict[tuple[str, tuple[Any, ...]], str] = {}
_memo_lock = threading.Lock()


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _stat(path: Path) -> tuple[Any, ...]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def remembered_digest(path: Path) -> str:
    """`file_digest`, remembered for this process while the file's stat is unchanged."""
    stat = _stat(path)
    memo_key = (str(path.resolve()), stat)
    with _memo_lock:
        found = _memo.get(memo_key)
    if found is not None:
        return found
    digest = file_digest(path)
    if time.time() - max(stat[3], stat[4]) / 1e9 > RACY_S:
        with _memo_lock:
            _memo[memo_key] = digest
    return digest


def data_digest(path: str | Path) -> str:
    """The bytes of a file, or of every file under a folder with its relative path."""
    path = Path(path)
    if path.is_file():
        return remembered_digest(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    h = hashlib.sha256()
    for f in _files(path):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + remembered_digest(f).encode() + b"\0")
    return h.hexdigest()


def path_fingerprint(path: str | Path) -> str:
    """`data_digest`, or MISSING for a path that does not exist: the stage reports it
    (a source fails with its reason, a benchmark is skipped), not the key."""
    try:
        return data_digest(Path(path).expanduser())
    except FileNotFoundError:
        return MISSING


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
            part = remembered_digest(f)
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


def run_nonce() -> str:
    """This run's nonce (see NONCE_ENV): made on first use, inherited by child processes."""
    return os.environ.setdefault(NONCE_ENV, secrets.token_hex(8))


def dataset_identity(src: HFSource) -> str | None:
    """A `datasets.load_dataset` source: local data files or a local dataset folder by
    their bytes, a hub dataset by its pinned revision (None when unpinned)."""
    local = Path(src.dataset).expanduser()
    if src.data_files:
        matches = [sorted(glob.glob(os.path.expanduser(p), recursive=True)) for p in src.data_files]
        if all(matches):  # every pattern names local files: the data is those bytes
            parts = [f"{f}={data_digest(f)}" for found in matches for f in found]
            base = f"dir:{data_digest(local)}" if local.is_dir() else src.dataset
            return hashlib.sha256("\n".join([base, *parts]).encode()).hexdigest()
    if local.is_dir():
        return "dir:" + data_digest(local)
    return f"hub:{src.dataset}@{src.revision}" if src.revision else None


# --- the registry's `external` hooks (t2g.stages): section -> {input: fingerprint} ------
# An input's name is what the user reads when its fingerprint is None ("<name> has no
# pinned revision: never cached").


def collect_inputs(cfg: CollectConfig) -> dict[str, str | None]:
    """Every source's content. Toy-world sources are their parameters (in the section)."""
    out: dict[str, str | None] = {}
    for src in cfg.sources:
        if isinstance(src, HFSource):
            out[f"source {src.name}: hf dataset {src.dataset}"] = dataset_identity(src)
        elif isinstance(src, (JsonlSource, ParquetSource, TextSource, AnnotatedSource)):
            out[f"source {src.name}: {src.kind} {src.path}"] = source_fingerprint(src)
    return out


def source_fingerprint(src: JsonlSource | ParquetSource | TextSource | AnnotatedSource) -> str:
    """A file source's content, reading only what the source may read (t2g.sources.datafiles):
    a system path is not read at all (the stage refuses it), and a text folder's symlinks
    and special files count by their path and reason, as collect counts them, instead of by
    what they point at. For a folder of plain files this is `data_digest`."""
    if system_problem(src.path):
        return "refused: " + src.path
    folder = Path(src.path).expanduser()
    if not (isinstance(src, TextSource) and folder.is_dir()):
        return path_fingerprint(src.path)
    h = hashlib.sha256()
    for entry in folder_entries(folder, src.follow_symlinks, suffix=""):
        part = remembered_digest(Path(entry.real)) if entry.problem is None else "not read: " + entry.problem
        h.update(entry.path.relative_to(folder).as_posix().encode() + b"\0" + part.encode() + b"\0")
    return h.hexdigest()


def benchmark_inputs(cfg: EvaluateConfig) -> dict[str, str | None]:
    return {f"benchmark {path}": path_fingerprint(path) for path in cfg.benchmarks}


def sft_inputs(cfg: SftConfig) -> dict[str, str | None]:
    """The base model; "tiny" is built from the config, "@teacher" is an upstream artifact."""
    if cfg.model in (TINY, TEACHER):
        return {}
    return {f"model {cfg.model}": model_identity(cfg.model, cfg.model_revision)}


def llm_inputs(cfg: LLMSection) -> dict[str, str | None]:
    """The model an LLM stage prompts, as its backend's registry entry names it
    (t2g.llm.registry): a served model (openai) by its name, plus the revision when the
    recipe gives one (the server is trusted to serve what its name says); a local one by
    `model_identity`."""
    backend = getattr(cfg, "backend", None)
    if backend == "gold" or getattr(cfg, "thinking", True) is False or cfg.model in (None, TEACHER, REASONER, TINY):
        return {}  # no model is prompted, or the model is an upstream artifact
    spec = registry.lookup(backend)
    return {f"{spec.input_name} {cfg.model}": spec.model_identity(cfg.model, cfg.model_revision)}
