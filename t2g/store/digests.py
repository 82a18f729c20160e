"""Digests the store checks what it reads against: of a table's rows (`table_digest`,
the same after a Parquet round trip) and of a file's bytes (`file_digest`); and
`arrow_owned`, the memory Arrow reads parts from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc


def file_digest(path: Path | BinaryIO) -> str:
    """sha256 of a file's bytes: a path, or a file already open (read from where it is)."""
    if not isinstance(path, (str, Path)):
        return _stream_digest(path)
    with open(path, "rb") as fh:
        return _stream_digest(fh)


def _stream_digest(fh: BinaryIO) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def arrow_owned(data: bytes) -> pa.Buffer:
    """`data` copied into memory Arrow allocated, holding no Python object.

    Why: Arrow reads and decodes on its own native threads. Handed a Python object (a
    BytesIO, or bytes wrapped by `py_buffer`), such a thread takes the GIL to read it or
    to drop the last reference, and when that happens while the interpreter is exiting it
    aborts the process (exit 134: "terminate called without an active exception", or
    "PyGILState_Release ... finalizing"), after a run that succeeded. An all-hit `t2g run`
    ends right after reading artifacts, so it is where this showed. One copy of a part is
    cheap next to decoding it. tests/t2g/test_sources_security.py reproduces the abort."""
    out = pa.BufferOutputStream()
    out.write(data)
    return out.getvalue()


def table_digest(table: pa.Table) -> str:
    """sha256 of a table's column names, logical types and values: the same after a
    Parquet write and read, whatever the chunking, slicing, schema metadata, dictionary
    encoding, nullability flags or list field names (Parquet reads `list<item>` back as
    `list<element>`), and whatever bytes sit under null slots.

    Each column is taken apart into null-free leaves (the positions of its nulls, list
    lengths, the values of struct children and list elements), and only the leaves' live
    bytes are hashed, never Arrow buffers as a whole, whose sizes and offsets vary."""
    h = hashlib.sha256()
    h.update(repr((table.num_rows, [(f.name, _type_name(f.type)) for f in table.schema])).encode())
    for column in table.columns:
        if pa.types.is_dictionary(column.type):  # chunks may carry different dictionaries
            column = column.cast(column.type.value_type)
        if column.num_chunks == 1:
            array = column.chunk(0)  # no copy
        else:
            array = pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
        for leaf in _leaves(array):
            h.update(len(leaf).to_bytes(8, "little"))
            for block in _leaf_bytes(leaf):
                h.update(block)
    return h.hexdigest()


def _type_name(t: pa.DataType) -> str:
    """A type's name without what Parquet does not keep (list field names, nullability,
    dictionary encoding)."""
    if pa.types.is_dictionary(t):
        return _type_name(t.value_type)
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name!r}: {_type_name(f.type)}" for f in t) + ">"
    if pa.types.is_map(t):
        return f"map<{_type_name(t.key_type)}, {_type_name(t.item_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{_type_name(t.value_type)}, {t.list_size}>"
    if pa.types.is_large_list(t):
        return f"large_list<{_type_name(t.value_type)}>"
    if pa.types.is_list(t):
        return f"list<{_type_name(t.value_type)}>"
    return str(t)


def _leaves(array: pa.Array) -> Iterator[pa.Array]:
    """Null-free arrays that together hold `array`'s content: its null positions, then
    (without the null slots) list lengths and the leaves of children."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    yield pc.indices_nonzero(array.is_null())
    array = array.drop_null()
    t = array.type
    if pa.types.is_struct(t):
        for child in array.flatten():  # flatten() honours the struct's own offset
            yield from _leaves(child)
    elif pa.types.is_fixed_size_list(t):
        yield from _leaves(array.flatten())
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        offsets = array.offsets
        yield pc.subtract(offsets.slice(1), offsets.slice(0, len(offsets) - 1))
        start, end = (offsets[0].as_py(), offsets[-1].as_py()) if len(array) else (0, 0)
        yield from _leaves(array.values.slice(start, end - start))
    elif not pa.types.is_null(t):
        yield array


def _leaf_bytes(array: pa.Array) -> Iterator[Any]:
    """The live bytes of a null-free leaf: independent of its offset, buffer sizes and
    whether it carries an (all-valid) validity bitmap."""
    t = array.type
    if pa.types.is_boolean(t):
        array = array.cast(pa.uint8())  # a bitmap's spare bits may hold anything
    elif pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        array = array.cast(pa.large_binary())
    t, n, off = array.type, len(array), array.offset
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        width = 8 if pa.types.is_large_string(t) or pa.types.is_large_binary(t) else 4
        offsets = array.buffers()[1]
        first, last = (
            int.from_bytes(offsets[(off + i) * width : (off + i + 1) * width], "little", signed=True) for i in (0, n)
        )
        yield from _leaf_bytes(pc.binary_length(array))
        if last > first:
            yield array.buffers()[2][first:last]
        return
    width = t.bit_width // 8
    if n:
        yield array.buffers()[1][off * width : (off + n) * width]
