"""Which files a source may read: data files, never system files or what a folder's
symlinks point at.

The rules (docs/design.md, "What a data folder may make t2g read"):

- A source's own path (`path` of jsonl, parquet, annotated and text sources, the local
  `dataset` and `data_files` of hf sources) must not be, or lead through symlinks to,
  anything under /proc, /sys or /dev: `SourceError` names the field.
- In a text folder, every entry whose name ends in `.txt`, and every symlink whatever its
  name, is one row: read (a regular file), or quarantined with a reason without being
  opened (a FIFO, socket or device; a symlink; a file larger than the source may keep).
  Folders are walked. Symlinks are not followed unless the source says
  `follow_symlinks: true`, and even then only to a target inside the folder.
- A file is opened with O_NOFOLLOW | O_NONBLOCK (a FIFO swapped in after the listing does
  not block), and the opened file must be the regular file the listing saw (same device
  and inode), so a folder changed during the walk cannot redirect the read. At most
  `max_bytes + 1` bytes are read.
"""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from t2g.sources.base import TOO_LONG, SourceError

SYSTEM_ROOTS = ("/proc", "/sys", "/dev")
UNDER_SYSTEM = "under /proc, /sys or /dev"

# Reasons for folder entries that are not read (quarantined, never opened).
SYMLINK_NOT_FOLLOWED = "symlink not followed"
SYMLINK_OUTSIDE = "symlink leads outside the folder"
SYMLINK_BROKEN = "broken symlink"
SYMLINK_LOOP = "symlink to a folder already read"
CHANGED = "changed while reading"
_KINDS = {
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFDIR: "folder",
}


def not_regular(mode: int) -> str:
    return f"not a regular file: {_KINDS.get(stat.S_IFMT(mode), 'special file')}"


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def system_problem(path: str | Path) -> str | None:
    """Why a path named by a recipe must not be read (it is, or leads to, a system file)."""
    given = os.path.abspath(os.path.expanduser(str(path)))
    if any(_under(given, root) for root in SYSTEM_ROOTS):
        return f"{path} is {UNDER_SYSTEM}"
    if any(_under(os.path.realpath(given), root) for root in SYSTEM_ROOTS):
        return f"{path} leads {UNDER_SYSTEM}"
    return None


def checked_path(source: str, field: str, path: str) -> Path:
    """`path` as a Path, or SourceError naming `field` when it is a system file."""
    problem = system_problem(path)
    if problem:
        raise SourceError(
            source, path, f"{field}: {problem}; a source reads data files only, name a data file or folder"
        )
    return Path(path).expanduser()


def check_patterns(source: str, field: str, patterns: list[str]) -> None:
    """Every local file a glob pattern (hf `data_files`) names, and the pattern itself."""
    for pattern in patterns:
        for path in [pattern, *glob.glob(os.path.expanduser(pattern), recursive=True)]:
            checked_path(source, field, path)


@dataclass(frozen=True)
class Entry:
    """One counted entry of a text folder: `path` as found under the folder; `problem` is
    why it is not read (None: a regular file to read, expected at `real` with `ino`)."""

    path: Path
    problem: str | None = None
    real: str = ""
    dev: int = 0
    ino: int = 0
    size: int = 0


def folder_entries(root: Path, follow_symlinks: bool, suffix: str = ".txt") -> list[Entry]:
    """The counted entries of a folder, sorted by path (as `sorted(rglob)` would be)."""
    real_root = os.path.realpath(root)
    out: list[Entry] = []
    _walk(root, real_root, real_root, follow_symlinks, suffix, {real_root}, out)
    return out


def _walk(
    shown: Path, real_dir: str, real_root: str, follow: bool, suffix: str, seen: set[str], out: list[Entry]
) -> None:
    with os.scandir(real_dir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = shown / entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            _symlink(path, entry.path, real_root, follow, suffix, seen, out)
        elif stat.S_ISDIR(st.st_mode):
            _walk(path, entry.path, real_root, follow, suffix, seen, out)
        elif entry.name.endswith(suffix):
            _file(path, entry.path, st, out)


def _symlink(
    path: Path, link: str, real_root: str, follow: bool, suffix: str, seen: set[str], out: list[Entry]
) -> None:
    if not follow:
        out.append(Entry(path, SYMLINK_NOT_FOLLOWED))
        return
    real = os.path.realpath(link)
    if not _under(real, real_root):
        out.append(Entry(path, SYMLINK_OUTSIDE))
        return
    try:
        st = os.stat(real, follow_symlinks=False)
    except OSError:
        out.append(Entry(path, SYMLINK_BROKEN))
        return
    if stat.S_ISDIR(st.st_mode):
        if real in seen:
            out.append(Entry(path, SYMLINK_LOOP))
            return
        seen.add(real)
        _walk(path, real, real_root, follow, suffix, seen, out)
    elif path.name.endswith(suffix):
        _file(path, real, st, out)


def _file(path: Path, real: str, st: os.stat_result, out: list[Entry]) -> None:
    if not stat.S_ISREG(st.st_mode):
        out.append(Entry(path, not_regular(st.st_mode)))
    else:
        out.append(Entry(path, None, real, st.st_dev, st.st_ino, st.st_size))


def read_entry(entry: Entry, max_bytes: int) -> bytes | str:
    """The bytes of a listed regular file (at most max_bytes + 1 of them), or the reason
    it was not read. OSError (unreadable) propagates."""
    fd = os.open(entry.real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
            return CHANGED
        if not stat.S_ISREG(st.st_mode):
            return not_regular(st.st_mode)
        if st.st_size > max_bytes:
            return TOO_LONG  # never read: more bytes than max_chars characters can take
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
