"""Local files: JSON Lines, Parquet, and plain text (a file or a folder of .txt files).

Each `read_*` function checks that the source can be opened when it is called (raising
`SourceError` right away, before any document is read) and returns a lazy iterator of
rows. JSONL and text are read as bytes and decoded line by line, so one bad line is one
quarantined row, not a failed run.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from t2g.config import JsonlSource, ParquetSource, TextSource
from t2g.sources.base import (
    BLANK_LINE,
    INVALID_UTF8,
    NOT_JSON,
    NOT_OBJECT,
    Row,
    SourceError,
    decode_line,
    rejected,
    text_problem,
    text_row,
)

PARQUET_BATCH = 4_096


def read_jsonl(src: JsonlSource) -> Iterator[Row]:
    path = _existing_file(src.name, src.path)

    def rows() -> Iterator[Row]:
        for line_no, obj in json_lines(src.name, path):
            if isinstance(obj, Row):
                yield obj
            else:
                meta = {"file": str(path), "line": line_no}
                yield text_row(src.name, line_no, obj, src.text_field, src.id_field, meta)

    return rows()


def json_lines(source: str, path: Path) -> Iterator[tuple[int, dict[str, Any] | Row]]:
    """(line number, JSON object) per line, or (line number, rejected Row) for a line that
    is blank, not UTF-8, not JSON, or not an object. Shared with annotated sources."""
    with _reading(source, path):
        with path.open("rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
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


def read_parquet(src: ParquetSource) -> Iterator[Row]:
    path = _existing_file(src.name, src.path)
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


def read_text(src: TextSource) -> Iterator[Row]:
    """One document per line of a file, or one document per .txt file of a folder
    (sorted by path, searched recursively, so the order is stable)."""
    path = Path(src.path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            # Most likely a wrong path or pattern: fail loudly rather than collect nothing.
            raise SourceError(src.name, src.path, "folder holds no .txt files")
        return _text_files(src.name, files)
    return _text_lines(src.name, _existing_file(src.name, src.path))


def _text_lines(source: str, path: Path) -> Iterator[Row]:
    with _reading(source, path):
        with path.open("rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                line = decode_line(raw)
                if line is None:
                    yield rejected(source, line_no, INVALID_UTF8, raw.rstrip(b"\r\n"))
                elif not line.strip():
                    yield rejected(source, line_no, BLANK_LINE, line)
                else:
                    yield _text_doc(source, line_no, line, {"file": str(path), "line": line_no})


def _text_files(source: str, files: list[Path]) -> Iterator[Row]:
    for index, path in enumerate(files):
        with _reading(source, path):
            data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield rejected(source, index, INVALID_UTF8, data[:4_096])
            continue
        yield _text_doc(source, index, text, {"file": str(path)})


def _text_doc(source: str, row: int, text: str, meta: dict[str, Any]) -> Row:
    problem = text_problem(text)
    if problem:
        return rejected(source, row, problem, text)
    return Row(source=source, row=row, text=text, meta=meta)


def _existing_file(source: str, path: str) -> Path:
    p = Path(path)
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
