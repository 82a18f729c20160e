"""Local files: JSON Lines, Parquet, and plain text (a file or a folder of .txt files).

Each `read_*` function checks that the source can be opened when it is called (raising
`SourceError` right away, before any document is read) and returns a lazy iterator of
rows. JSONL and text are read as bytes and decoded line by line, so one bad line is one
quarantined row, not a failed run. A line is read at most `line_bytes(max_chars)` bytes
at a time: a longer one is quarantined as "line too long" and skipped in bounded chunks,
so no line is held whole whatever the file holds. Which files may be read at all, and
how a folder's entries are counted: t2g.sources.datafiles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from t2g.config import JsonlSource, ParquetSource, TextSource
from t2g.sources.base import (
    BLANK_LINE,
    INVALID_UTF8,
    LINE_TOO_LONG,
    NOT_JSON,
    NOT_OBJECT,
    TOO_LONG,
    Row,
    SourceError,
    decode_line,
    rejected,
    text_problem,
    text_row,
)
from t2g.sources.datafiles import Entry, checked_path, folder_entries, read_entry

PARQUET_BATCH = 4_096
DEFAULT_MAX_CHARS = 100_000  # CollectConfig.max_chars's default, for a reader called alone
EXCERPT_BYTES = 4_096  # what a rejected line or file keeps for the quarantine's excerpt


def line_bytes(max_chars: int) -> int:
    """The longest line read whole: a document of max_chars characters written as JSON
    with every character escaped (12 bytes for a surrogate pair), plus 1 MiB for the
    other fields (gold graphs, metadata)."""
    return 12 * max_chars + (1 << 20)


def file_bytes(max_chars: int) -> int:
    """The largest file a folder's document is read from: UTF-8 takes at most 4 bytes a
    character, so a larger file certainly holds more than max_chars characters."""
    return 4 * max_chars


@dataclass(frozen=True)
class LongLine:
    """A line longer than the limit: only its first bytes were kept."""

    head: bytes


def bounded_lines(fh: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | LongLine]]:
    """(line number, line) per line of a binary file, or (line number, LongLine) for a
    line of more than `limit` bytes, whose rest is skipped `limit` bytes at a time."""
    line_no = 0
    while raw := fh.readline(limit + 1):
        line_no += 1
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield line_no, raw
            continue
        head = raw[:EXCERPT_BYTES]
        while raw and not raw.endswith(b"\n"):
            raw = fh.readline(limit)
        yield line_no, LongLine(head)


def read_jsonl(src: JsonlSource, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Row]:
    path = existing_file(src.name, src.path)

    def rows() -> Iterator[Row]:
        for line_no, obj in json_lines(src.name, path, max_chars):
            if isinstance(obj, Row):
                yield obj
            else:
                meta = {"file": str(path), "line": line_no}
                yield text_row(src.name, line_no, obj, src.text_field, src.id_field, meta)

    return rows()


def json_lines(
    source: str, path: Path, max_chars: int = DEFAULT_MAX_CHARS
) -> Iterator[tuple[int, dict[str, Any] | Row]]:
    """(line number, JSON object) per line, or (line number, rejected Row) for a line that
    is blank, too long, not UTF-8, not JSON, or not an object. Shared with annotated sources."""
    with _reading(source, path):
        with path.open("rb") as fh:
            for line_no, raw in bounded_lines(fh, line_bytes(max_chars)):
                if isinstance(raw, LongLine):
                    yield line_no, rejected(source, line_no, LINE_TOO_LONG, raw.head)
                    continue
                line = decode_line(raw)
                if line is None:
                    yield line_no, rejected(source, line_no, INVALID_UTF8, raw.rstrip(b"\r\n"))
                elif not line.strip():
                    yield line_no, rejected(source, line_no, BLANK_LINE, line)
                else:
                    try:
                        obj = json.loads(line)
                    except (ValueError, RecursionError):
                        yield line_no, rejected(source, line_no, NOT_JSON, line)
                        continue
                    if isinstance(obj, dict):
                        yield line_no, obj
                    else:
                        yield line_no, rejected(source, line_no, NOT_OBJECT, line)


def read_parquet(src: ParquetSource, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Row]:
    path = existing_file(src.name, src.path)
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(src.name, str(path), f"not a readable Parquet file: {exc}") from None
    names = file.schema_arrow.names
    if src.text_field not in names:
        raise SourceError(src.name, str(path), f"no text column {src.text_field!r} (columns: {names})")
    columns = [src.text_field] + ([src.id_field] if src.id_field and src.id_field in names else [])

    def rows() -> Iterator[Row]:
        index = 0
        with _reading(src.name, path):
            # Batches keep memory bounded whatever the file size.
            for batch in file.iter_batches(batch_size=PARQUET_BATCH, columns=columns):
                for record in batch.to_pylist():
                    meta = {"file": str(path), "row": index}
                    yield text_row(src.name, index, record, src.text_field, src.id_field, meta)
                    index += 1

    return rows()


def read_text(src: TextSource, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Row]:
    """One document per line of a file, or one document per .txt file of a folder
    (sorted by path, searched recursively, so the order is stable). A folder's entries
    are counted as t2g.sources.datafiles says: symlinks, FIFOs, sockets and devices are
    rows quarantined with their reason, never opened."""
    path = checked_path(src.name, "path", src.path)
    if path.is_dir():
        entries = folder_entries(path, src.follow_symlinks)
        if not entries:
            # Most likely a wrong path or pattern: fail loudly rather than collect nothing.
            raise SourceError(src.name, src.path, "folder holds no .txt files")
        return _text_files(src.name, entries, max_chars)
    return _text_lines(src.name, existing_file(src.name, src.path), max_chars)


def _text_lines(source: str, path: Path, max_chars: int) -> Iterator[Row]:
    with _reading(source, path):
        with path.open("rb") as fh:
            for line_no, raw in bounded_lines(fh, line_bytes(max_chars)):
                if isinstance(raw, LongLine):
                    yield rejected(source, line_no, LINE_TOO_LONG, raw.head)
                    continue
                line = decode_line(raw)
                if line is None:
                    yield rejected(source, line_no, INVALID_UTF8, raw.rstrip(b"\r\n"))
                elif not line.strip():
                    yield rejected(source, line_no, BLANK_LINE, line)
                else:
                    yield _text_doc(source, line_no, line, {"file": str(path), "line": line_no})


def _text_files(source: str, entries: list[Entry], max_chars: int) -> Iterator[Row]:
    for index, entry in enumerate(entries):
        # Anything not read is shown by its path: the quarantine never holds its content.
        if entry.problem is not None:
            yield rejected(source, index, entry.problem, str(entry.path))
            continue
        with _reading(source, entry.path):
            data = read_entry(entry, file_bytes(max_chars))
        if isinstance(data, str) or len(data) > file_bytes(max_chars):  # a reason, or it grew
            yield rejected(source, index, data if isinstance(data, str) else TOO_LONG, str(entry.path))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield rejected(source, index, INVALID_UTF8, data[:EXCERPT_BYTES])
            continue
        yield _text_doc(source, index, text, {"file": str(entry.path)})


def _text_doc(source: str, row: int, text: str, meta: dict[str, Any]) -> Row:
    problem = text_problem(text)
    if problem:
        return rejected(source, row, problem, text)
    return Row(source=source, row=row, text=text, meta=meta)


def existing_file(source: str, path: str) -> Path:
    """A source's `path`: a regular file that is not, and does not lead to, a system file."""
    p = checked_path(source, "path", path)
    if not p.is_file():
        raise SourceError(source, path, "no such file" if not p.exists() else "not a file")
    return p


@contextmanager
def _reading(source: str, path: Path) -> Iterator[None]:
    """Turns an I/O failure in the middle of a file into a SourceError naming it."""
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(source, str(path), f"read failed: {exc}") from exc
