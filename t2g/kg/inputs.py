"""Documents from the command line's --input, streamed: a JSONL file (one object with a
string `text` and an optional `id` a line), a Parquet file (columns `text` and optional
`id`) or a folder of .txt files (one document each, its id the file's name; walked by the
rules of a recipe's `text` source: symlinks and special files are bad rows, never opened).
Nothing under /proc, /sys or /dev is read, and nothing reads the whole input at once:
`documents` yields rows one at a time, `batches` groups them, and `check` counts them for a
progress bar without keeping anything.

A bad row (a line that is not UTF-8 or not JSON, no string `text`, an empty text or file, a
text or id holding a lone surrogate) is named with where it is (line, row or file) and why.
A file name that is not UTF-8 is shown, and becomes the id, with its bytes as \\xNN escapes.
Strict callers (`t2g extract`) get an InputError at the first one, before any model loads;
callers that pass `bad=[]` (`t2g graph`, a corpus is rarely clean) get it appended to that
list as a Quarantined row and the stream goes on. An input that cannot be read at all
(missing, not Parquet, no `text` column, no good document) is an InputError either way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from t2g.sources.base import LINE_TOO_LONG, TOO_LONG, is_storable
from t2g.sources.datafiles import folder_entries, read_entry, system_problem
from t2g.sources.files import LongLine, bounded_lines

FILE_BYTES = 256 << 20  # a folder's file or a JSONL line longer than this is left out, never read whole


class InputError(ValueError):
    """An input the command cannot read; the message names the file and the line or row."""


class Quarantined(NamedTuple):
    where: str  # "--input PATH line N", "... row N", or the file
    reason: str
    raw: str | None  # the line as read (undecodable bytes escaped); None for a file, which stays where it is


@dataclass
class _BadRow:  # what a reader yields for a row it cannot use; `documents` decides its fate
    reason: str
    raw: str | None = None


def kind(path: Path) -> str:
    if problem := system_problem(path):
        raise InputError(f"--input {problem}: give a data file or folder")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".jsonl", ".json", ".ndjson") or path.is_file():
        return "jsonl"
    raise InputError(
        f"--input {path}: no such file or folder (give a .jsonl or .parquet file, or a folder of .txt files)"
    )


def documents(path: Path, option: str = "--input", bad: list[Quarantined] | None = None) -> Iterator[dict]:
    """Rows {"id", "text"} of the input, in order. A bad row raises InputError, or with `bad`
    is appended there and skipped (see the module docstring)."""
    found = 0
    reader = {"folder": _folder, "parquet": _parquet, "jsonl": _jsonl}[kind(path)]
    for where, row in reader(path, option):
        if isinstance(row, _BadRow):
            if bad is None:
                raise InputError(f"{where}: {row.reason}")
            bad.append(Quarantined(where, row.reason, row.raw))
            continue
        found += 1
        yield row
    if not found:
        skipped = f" ({len(bad)} bad, none good)" if bad else ""
        raise InputError(f"{option} {path} has no texts{skipped}")


def check(path: Path, option: str = "--input", bad: list[Quarantined] | None = None) -> int:
    """Read the whole input once (streaming) and return how many good documents it holds."""
    return sum(1 for _ in documents(path, option, bad))


def batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while batch := list(islice(rows, size)):
        yield batch


def _problem(row) -> str | None:
    """Why a parsed row is not a document, or None."""
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        return "every line must be a JSON object with a string 'text'"
    if not row["text"].strip():
        return "'text' is empty"
    # JSON may escape a lone surrogate ("\\ud800"); Arrow's UTF-8 strings cannot hold one.
    for field in ("text", "id"):
        if isinstance(row.get(field), str) and not is_storable(row[field]):
            return f"'{field}' holds a lone surrogate (not Unicode text)"
    return None


def _id(row: dict, number: int):
    """The row's id; a null or NaN id (`"id": null`, a Parquet null, JSON's NaN) is no id, so
    the row is known by its line or row number as without one (not as "None" or "nan", where
    every such row after the first was a duplicate)."""
    value = row.get("id")
    return number if value is None or value != value else value


def _shown(path: Path) -> str:
    """A path as text Arrow and UTF-8 files can hold: a file name's bytes that are not UTF-8
    (Linux names are bytes; Python keeps them as surrogates) written as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _jsonl(path: Path, option: str) -> Iterator[tuple[str, dict | _BadRow]]:
    try:
        fh = open(path, "rb")  # bytes: only \n ends a line (not U+2028, not a lone \r), and a line
    except OSError as exc:  # that is not UTF-8 is that line's problem, not the file's
        raise InputError(f"{option} {path}: {exc}") from None
    with fh:
        for number, data in bounded_lines(fh, FILE_BYTES):
            where = f"{option} {path} line {number}"
            if isinstance(data, LongLine):  # never read whole: its first bytes are kept
                yield where, _BadRow(f"{LINE_TOO_LONG} (over {FILE_BYTES} bytes)", data.head.decode("utf-8", "replace"))
                continue
            try:
                line = data.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM, as Windows tools write
            except UnicodeDecodeError as exc:
                yield where, _BadRow(f"not UTF-8 ({exc})", data.decode("utf-8", "backslashreplace"))
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                yield where, _BadRow(f"not JSON ({exc})", line)
                continue
            if problem := _problem(row):
                yield where, _BadRow(problem, line)
                continue
            yield (
                where,
                {
                    "id": _id(row, number),
                    "text": row["text"],
                    **{k: v for k, v in row.items() if k not in ("id", "text")},
                },
            )


def _parquet(path: Path, option: str) -> Iterator[tuple[str, dict | _BadRow]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
        raise InputError(f"{option} {path}: not a Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise InputError(f"{option} {path}: no 'text' column (columns: {names})")
    columns = ["text"] + (["id"] if "id" in names else [])
    number = 0
    for batch in pf.iter_batches(batch_size=4096, columns=columns):
        for row in batch.to_pylist():
            number += 1
            where = f"{option} {path} row {number}"
            if problem := _problem(row):
                yield where, _BadRow(problem, json.dumps(row, ensure_ascii=False, default=str))
                continue
            yield where, {"id": _id(row, number), "text": row["text"]}


def _folder(path: Path, option: str) -> Iterator[tuple[str, dict | _BadRow]]:
    # The text-folder rules of a recipe's `text` source (t2g.sources.datafiles): symlinks are
    # not followed, a FIFO, socket or device is never opened, a file is read at most to
    # FILE_BYTES; each such entry is a bad row with its reason.
    for entry in folder_entries(path, follow_symlinks=False):
        where = f"{option} {_shown(entry.path)}"
        if entry.problem is not None:
            yield where, _BadRow(entry.problem)
            continue
        try:
            data = read_entry(entry, FILE_BYTES)
        except OSError as exc:
            yield where, _BadRow(f"cannot read it ({exc})")
            continue
        if isinstance(data, str) or len(data) > FILE_BYTES:
            yield where, _BadRow(data if isinstance(data, str) else TOO_LONG)
            continue
        try:
            text = data.decode("utf-8")  # as stored: offsets point into the file's own text
        except UnicodeDecodeError as exc:
            yield where, _BadRow(f"cannot read it as UTF-8 text ({exc})")
            continue
        if not text.strip():
            yield where, _BadRow("the file is empty")
            continue
        yield where, {"id": _shown(entry.path.relative_to(path)), "text": text}
