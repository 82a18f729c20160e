"""Hugging Face datasets: a hub name, a local dataset folder, or a builder ("json", "csv",
"parquet", "text") with `data_files`, exactly as `datasets.load_dataset` takes them. A hub
dataset is read at `revision` when the recipe pins one (else it is never a cache hit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from t2g.config import HFSource
from t2g.sources.base import Row, SourceError, text_row
from t2g.sources.datafiles import check_patterns, checked_path


def read_hf(src: HFSource, max_chars: int | None = None) -> Iterator[Row]:
    # Local files only: a hub name is not a path, and the hub is not /proc.
    if Path(src.dataset).expanduser().exists():
        checked_path(src.name, "dataset", src.dataset)
    check_patterns(src.name, "data_files", src.data_files or [])
    # Imported here: `datasets` is slow to import and only this source needs it.
    import datasets

    where = src.dataset + (f" ({', '.join(src.data_files)})" if src.data_files else "")
    try:
        ds = datasets.load_dataset(
            src.dataset,
            src.subset,
            split=src.hf_split,
            streaming=src.streaming,
            data_files=src.data_files,
            revision=src.revision,  # pinned: the one the stage key names (t2g.fingerprint)
        )
    except Exception as exc:  # the library raises many kinds (not found, offline, bad builder, bad files)
        raise SourceError(src.name, where, f"cannot load dataset: {type(exc).__name__}: {exc}") from None
    # Streaming datasets may not know their columns before the first row; then a missing
    # text column shows up row by row as "missing text" instead.
    columns = getattr(ds, "column_names", None)
    if columns is not None and src.text_field not in columns:
        raise SourceError(src.name, where, f"no text column {src.text_field!r} (columns: {columns})")

    def rows() -> Iterator[Row]:
        try:
            for index, record in enumerate(ds):
                meta = {"dataset": src.dataset, "subset": src.subset, "split": src.hf_split, "row": index}
                yield text_row(src.name, index, record, src.text_field, src.id_field, meta)
        except Exception as exc:  # a lazily read (streamed) file can fail mid-way
            raise SourceError(src.name, where, f"read failed: {type(exc).__name__}: {exc}") from exc

    return rows()
