"""Documents from the command line's --input, streamed: a JSONL file (one object with a
string `text` and an optional `id` a line), a Parquet file (columns `text` and optional
`id`) or a folder of .txt files (one document each, its id the file's name). Nothing
reads the whole input at once: `documents` yields rows one at a time, `batches` groups
them, and `count` sizes a progress bar without keeping anything.

A bad row is an error naming the input and where (line, row or file): the command line
scans the input once with `check` before any model loads, then streams it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path


class InputError(ValueError):
    """An input the command cannot read; the message names the file and the line or row."""


def kind(path: Path) -> str:
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


def documents(path: Path, option: str = "--input") -> Iterator[dict]:
    """Rows {"id", "text"} of the input, in order; raises InputError at the first bad one."""
    found = 0
    reader = {"folder": _folder, "parquet": _parquet, "jsonl": _jsonl}[kind(path)]
    for row in reader(path, option):
        found += 1
        yield row
    if not found:
        raise InputError(f"{option} {path} has no texts")


def check(path: Path, option: str = "--input") -> int:
    """Read the whole input once (streaming) and return how many documents it holds."""
    return sum(1 for _ in documents(path, option))


def batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while batch := list(islice(rows, size)):
        yield batch


def _text(row: dict, where: str) -> dict:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise InputError(f"{where}: every line must be a JSON object with a string 'text'")
    if not row["text"].strip():
        raise InputError(f"{where}: 'text' is empty")
    return row


def _jsonl(path: Path, option: str) -> Iterator[dict]:
    try:
        fh = open(path, encoding="utf-8", newline="\n")  # only \n ends a line (not U+2028, not a lone \r)
    except OSError as exc:
        raise InputError(f"{option} {path}: {exc}") from None
    with fh:
        number = 0
        for number, line in enumerate(_lines(fh), 1):
            if not line.strip():
                continue
            where = f"{option} {path} line {number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{where}: not JSON ({exc})") from None
            row = _text(row, where)
            yield {
                "id": row.get("id", number),
                "text": row["text"],
                **{k: v for k, v in row.items() if k not in ("id", "text")},
            }


def _lines(fh) -> Iterator[str]:
    """Lines split on \\n only, as an editor numbers them (str.splitlines also splits at
    U+2028, which JSON strings may hold raw)."""
    try:
        yield from fh
    except UnicodeDecodeError as exc:
        raise InputError(f"input is not UTF-8 ({exc})") from None


def _parquet(path: Path, option: str) -> Iterator[dict]:
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
            row = _text(row, f"{option} {path} row {number}")
            yield {"id": row.get("id", number), "text": row["text"]}


def _folder(path: Path, option: str) -> Iterator[dict]:
    for file in sorted(path.rglob("*.txt")):
        try:
            text = file.read_bytes().decode("utf-8")  # as stored: offsets point into the file's own text
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{option} {file}: {exc}") from None
        if not text.strip():
            raise InputError(f"{option} {file}: the file is empty")
        yield {"id": str(file.relative_to(path)), "text": text}
