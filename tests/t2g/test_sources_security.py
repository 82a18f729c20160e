"""What a data folder or a source path can make collect read (issue 25, items 1 and 7).

A source reads data files only: regular files inside a text folder (symlinks not followed
unless the source says `follow_symlinks: true`, and never out of the folder), never
anything under /proc, /sys or /dev, a file too large for `max_chars` never read whole,
and every entry of a folder counted. The quarantine keeps a bounded, redacted excerpt.
The smaller rules: meta is strict JSON, one control-character rule for every source, and
a second text under an id already kept is quarantined under its own reason.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from t2g.config import CollectConfig
from t2g.sources import SourceError
from t2g.sources.base import RAW_LIMIT, show_raw
from t2g.stages.collect import MAIN_SCHEMA, QUARANTINE_SCHEMA, collect, doc_id
from tests.support.hang_guard import hang_guard

SECRET = "s3cr3t-v4lue-0f-the-w0rker"
TEXTS = [
    "Satya Nadella is the chief executive of Microsoft.",
    "Kortron makes the Vophone, a phone sold in Belmere.",
    "The weather in Galholm was mild for the season this year.",
]


def run(sources: list[dict[str, Any]], **cfg: Any) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    with hang_guard(30):  # a FIFO opened by mistake blocks forever: fail instead
        result = collect(CollectConfig(sources=sources, **cfg))
        tables = list(result.main)
    quarantine = result.side["quarantine"]
    assert quarantine.schema == QUARANTINE_SCHEMA
    s = result.summary
    assert s["rows_in"] == s["rows_out"] + s["quarantined"]
    assert s["quarantined"] == quarantine.num_rows == sum(s["reasons"].values())
    for t in tables:
        assert t.schema == MAIN_SCHEMA
    return pa.concat_tables(tables), quarantine, s


def everything(main: pa.Table, quarantine: pa.Table) -> str:
    """Every string collect stored, main and quarantine."""
    return json.dumps([main.to_pylist(), quarantine.to_pylist()], ensure_ascii=False)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(TEXTS[0])
    (folder / "sub" / "b.txt").write_text(TEXTS[1])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "c.txt").write_text(TEXTS[2])
    (folder / "environ.txt").symlink_to("/proc/self/environ")
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "escape.txt").symlink_to(outside / "c.txt")
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)
    (folder / "inside.txt").symlink_to(folder / "sub" / "b.txt")
    return folder


# --- item 1: a text folder ---------------------------------------------------------------


def test_a_text_folder_follows_no_symlink_by_default(tmp_path: Path, secret_env: None) -> None:
    folder = _folder(tmp_path)
    main, quarantine, summary = run([{"kind": "text", "name": "f", "path": str(folder)}])
    assert main.column("text").to_pylist() == [TEXTS[0], TEXTS[1]]
    stored = everything(main, quarantine)
    assert SECRET not in stored and "root:" not in stored
    # Every symlink is one row, skipped with its reason and named by its path, not read.
    skipped = {Path(r["raw"]).name: r["reason"] for r in quarantine.to_pylist()}
    links = {"environ.txt", "passwd.txt", "zero.txt", "escape.txt", "elsewhere", "inside.txt"}
    assert skipped == {name: "symlink not followed" for name in links}
    assert summary["rows_in"] == 2 + len(links)


def test_follow_symlinks_stays_inside_the_folder(tmp_path: Path, secret_env: None) -> None:
    folder = _folder(tmp_path)
    main, quarantine, summary = run([{"kind": "text", "name": "f", "path": str(folder), "follow_symlinks": True}])
    assert main.column("text").to_pylist() == [TEXTS[0], TEXTS[1]]
    stored = everything(main, quarantine)
    assert SECRET not in stored and "root:" not in stored and TEXTS[2] not in stored
    by_name = {Path(r["raw"]).name: r["reason"] for r in quarantine.to_pylist() if r["reason"] != "exact duplicate"}
    outside = "symlink leads outside the folder"
    assert by_name == {
        "environ.txt": outside,
        "passwd.txt": outside,
        "zero.txt": outside,
        "escape.txt": outside,
        "elsewhere": outside,
    }
    # inside.txt is followed: the same text as sub/b.txt, so an exact duplicate.
    assert summary["reasons"]["exact duplicate"] == 1


def test_fifo_and_socket_named_txt_are_counted_and_never_opened(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXTS[0])
    os.mkfifo(folder / "pipe.txt")  # opening it would block until a writer comes
    sock = socket.socket(socket.AF_UNIX)
    sock_path = folder / "s.txt"
    if len(str(sock_path)) < 100:
        sock.bind(str(sock_path))
    (folder / "dir.txt").mkdir()  # a folder named *.txt is walked, not read
    (folder / "dir.txt" / "d.txt").write_text(TEXTS[1])
    try:
        main, quarantine, summary = run([{"kind": "text", "name": "f", "path": str(folder)}])
    finally:
        sock.close()
    assert main.column("text").to_pylist() == [TEXTS[0], TEXTS[1]]
    reasons = {Path(r["raw"]).name: r["reason"] for r in quarantine.to_pylist()}
    expected = {"pipe.txt": "not a regular file: fifo"}
    if sock_path.exists():
        expected["s.txt"] = "not a regular file: socket"
    assert reasons == expected
    assert summary["rows_in"] == 2 + len(expected)


SPARSE = 1 << 30
LONG_LINE = 1 << 26  # skipping a line means reading it: 64 MiB keeps the test at a second


def traced(fn, *args, **kwargs):
    """fn's result and the peak of Python allocations while it ran."""
    tracemalloc.start()
    try:
        result = fn(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_sparse_file_is_quarantined_without_being_read(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXTS[0])
    source = [{"kind": "text", "name": "f", "path": str(folder)}]
    run(source, max_chars=1_000)  # warm: lazy imports are not what is measured
    with open(folder / "big.txt", "wb") as fh:
        fh.truncate(SPARSE)  # 1 GiB of zeros on paper, no blocks on disk
    (main, quarantine, _), peak = traced(run, source, max_chars=1_000)
    assert peak < 16 << 20, f"collect allocated {peak >> 20} MiB for a folder of two files"
    assert main.column("text").to_pylist() == [TEXTS[0]]
    assert quarantine.to_pylist() == [
        {"source": "f", "row": 1, "reason": "too long", "raw": str(folder / "big.txt"), "duplicate_of": None}
    ]


def test_a_huge_line_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    source = [{"kind": "jsonl", "name": "j", "path": str(path)}]
    path.write_text(json.dumps({"text": TEXTS[0]}) + "\n")
    run(source, max_chars=1_000)  # warm: lazy imports are not what is measured
    with open(path, "ab") as fh:
        fh.truncate(LONG_LINE)  # one 64 MiB line of NULs after the first
    (main, quarantine, _), peak = traced(run, source, max_chars=1_000)
    assert peak < 16 << 20, f"collect allocated {peak >> 20} MiB for one long line"
    assert main.column("text").to_pylist() == [TEXTS[0]]
    [bad] = quarantine.to_pylist()
    assert bad["reason"] == "line too long" and len(bad["raw"]) <= RAW_LIMIT + 1


def test_the_cache_key_reads_what_the_source_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collect stage's key digests a folder's files; it opens no symlink's target
    (by default) and no system file."""
    from t2g import fingerprint

    folder = _folder(tmp_path)
    opened: list[str] = []
    real_digest = fingerprint.file_digest
    monkeypatch.setattr(fingerprint, "file_digest", lambda p: opened.append(os.path.realpath(p)) or real_digest(p))
    for follow in (False, True):
        cfg = CollectConfig(
            sources=[
                {"kind": "text", "name": "f", "path": str(folder), "follow_symlinks": follow},
                {"kind": "jsonl", "name": "j", "path": "/proc/self/environ"},
            ]
        )
        before = fingerprint.collect_inputs(cfg)
        assert opened and all(p.startswith(os.path.realpath(folder) + "/") for p in opened), opened
        (folder / "inside.txt").unlink()
        (folder / "inside.txt").symlink_to(folder / ("a.txt" if follow else "sub/b.txt"))
        after = fingerprint.collect_inputs(cfg)
        # A followed link is read, so its target is part of the key; one not followed is not.
        assert (after != before) == follow


# --- item 1: single-file sources never read system files ---------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "annotated", "text"])
@pytest.mark.parametrize(
    "target",
    [
        "/proc/self/environ",
        "/proc/self/cmdline",
        "/dev/zero",
        "/dev/stdin",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ],
)
def test_a_source_path_under_proc_sys_or_dev_is_refused(
    tmp_path: Path, secret_env: None, kind: str, target: str
) -> None:
    for path in (target, _link(tmp_path, target)):  # directly or through a symlink
        with pytest.raises(SourceError, match=r"path: .* (is|leads) under /proc, /sys or /dev") as err:
            run([{"kind": kind, "name": "s", "path": path}])
        assert SECRET not in str(err.value)


def _link(tmp_path: Path, target: str) -> str:
    link = tmp_path / f"link-{abs(hash(target))}.jsonl"
    if not link.is_symlink():
        link.symlink_to(target)
    return str(link)


def test_a_text_folder_under_proc_is_refused() -> None:
    with pytest.raises(SourceError, match=r"path: .* under /proc, /sys or /dev"):
        run([{"kind": "text", "name": "s", "path": "/proc/self"}])


def test_hf_data_files_under_proc_are_refused(secret_env: None) -> None:
    with pytest.raises(SourceError, match=r"data_files: .* under /proc, /sys or /dev"):
        run([{"kind": "hf", "name": "s", "dataset": "text", "data_files": ["/proc/self/environ"]}])


# --- item 1: the quarantine's excerpt ----------------------------------------------------


def test_quarantine_redacts_env_style_secrets(tmp_path: Path) -> None:
    path = tmp_path / "env.jsonl"
    path.write_text(
        f'AWS_SECRET_ACCESS_KEY={SECRET}\nexport OPENAI_API_KEY=\'{SECRET}\' HOME=/root\n{{"api_key": "{SECRET}"}}\n'
    )
    _, quarantine, _ = run([{"kind": "jsonl", "name": "j", "path": str(path)}])
    raws = quarantine.column("raw").to_pylist()
    assert SECRET not in json.dumps(raws)
    assert raws[0] == "AWS_SECRET_ACCESS_KEY=<redacted>"
    assert "HOME=/root" in raws[1]  # only secret-looking names are redacted


_NAME = st.from_regex(r"\A[A-Z][A-Z_]{0,8}(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIALS?)[A-Z_]{0,8}\Z")
_VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+/=-_.", min_size=8, max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    name=_NAME,
    value=_VALUE,
    sep=st.sampled_from(["=", ": ", '": "', "='", '="', " = "]),
    before=st.text(max_size=30),
    lower=st.booleans(),
)
def test_show_raw_never_shows_a_secret_value(name: str, value: str, sep: str, before: str, lower: bool) -> None:
    name = name.lower() if lower else name
    assume(value not in before)
    shown = show_raw(f"{before} {name}{sep}{value}\x00PATH=/usr/bin")
    assert value not in shown
    assert len(shown) <= RAW_LIMIT + 1


@given(st.one_of(st.text(max_size=5000), st.binary(max_size=5000)))
def test_show_raw_is_bounded_and_storable(value: Any) -> None:
    shown = show_raw(value)
    assert len(shown) <= RAW_LIMIT + 1
    shown.encode("utf-8")


# --- item 7: ids, control characters, duplicate ids ------------------------------------


def _strict(s: str) -> Any:
    def refuse(c: str) -> Any:
        raise ValueError(f"not strict JSON: {c}")

    return json.loads(s, parse_constant=refuse)


def test_a_nan_id_is_stored_as_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(f'{{"text": "{t}", "id": {i}}}\n' for t, i in zip(TEXTS, ["NaN", "Infinity", "2.5"])))
    main, _, _ = run([{"kind": "jsonl", "name": "j", "path": str(path), "id_field": "id"}])
    assert [_strict(m)["id"] for m in main.column("meta").to_pylist()] == [None, None, 2.5]

    pq_path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"text": TEXTS, "id": [math.nan, -math.inf, 3.0]}), pq_path)
    main, _, _ = run([{"kind": "parquet", "name": "p", "path": str(pq_path), "id_field": "id"}])
    assert [_strict(m)["id"] for m in main.column("meta").to_pylist()] == [None, None, 3.0]


def test_control_characters_are_removed_by_one_rule_in_every_source(tmp_path: Path) -> None:
    dirty = "Alice\x00 works\x07 at\x1b Acme.\tIn\r\nParis\x7f."
    clean = "Alice works at Acme.\tIn\r\nParis."
    (tmp_path / "j.jsonl").write_text(json.dumps({"text": dirty}) + "\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text(dirty)
    gold = {
        "entities": [{"text": "Ali\x00ce", "type": "person"}, {"text": "Acme", "type": "org"}],
        "relations": [{"head": "Ali\x00ce", "tail": "Acme", "type": "works_at"}],
    }
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": dirty + " again", **gold}) + "\n")
    main, _, _ = run(
        [
            {"kind": "jsonl", "name": "j", "path": str(tmp_path / "j.jsonl")},
            {"kind": "text", "name": "t", "path": str(tmp_path / "folder")},
            {"kind": "annotated", "name": "a", "path": str(tmp_path / "a.jsonl")},
        ],
        near_duplicate_threshold=None,
    )
    rows = main.to_pylist()
    assert [r["text"] for r in rows] == [clean, clean + " again"]  # the folder's copy is an exact duplicate
    assert json.loads(rows[1]["gold"])["entities"][0]["text"] == "Alice"
    assert rows[0]["id"] == doc_id(clean)


_CONTROLS = st.characters(min_codepoint=0, max_codepoint=0x9F)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(
        st.text(alphabet=st.one_of(_CONTROLS, st.characters(codec="utf-8")), min_size=1, max_size=40),
        min_size=1,
        max_size=8,
    )
)
def test_no_kept_text_holds_a_control_character(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> None:
    path = tmp_path_factory.mktemp("cc") / "j.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    main, _, _ = run([{"kind": "jsonl", "name": "j", "path": str(path)}], near_duplicate_threshold=None)
    for text in main.column("text").to_pylist():
        assert not any((ord(c) < 0x20 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F for c in text), repr(text)


def test_same_id_different_text_is_quarantined_under_its_own_reason(tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    rows = [
        ("x", TEXTS[0]),
        ("x", TEXTS[1]),
        ("x", TEXTS[0]),
        ("y", TEXTS[2]),
        (None, "No id here at all, just words."),
        (None, "Another text without any id."),
    ]
    path.write_text("".join(json.dumps({"text": t, **({} if i is None else {"id": i})}) + "\n" for i, t in rows))
    main, quarantine, summary = run(
        [{"kind": "jsonl", "name": "j", "path": str(path), "id_field": "id"}], near_duplicate_threshold=None
    )
    assert main.column("text").to_pylist() == [TEXTS[0], TEXTS[2], rows[4][1], rows[5][1]]
    assert quarantine.select(["row", "reason", "duplicate_of"]).to_pylist() == [
        {"row": 2, "reason": "duplicate id, different text", "duplicate_of": doc_id(TEXTS[0])},
        {"row": 3, "reason": "exact duplicate", "duplicate_of": doc_id(TEXTS[0])},
    ]
    assert summary["reasons"] == {"duplicate id, different text": 1, "exact duplicate": 1}
