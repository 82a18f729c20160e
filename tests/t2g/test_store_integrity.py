"""What is read is what was written: verified reads, quarantine, collision-free writers,
fail-fast storage errors and gc, over file:// and a real S3 service (SeaweedFS)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from t2g.store import MANIFEST, ArtifactCorrupt, ArtifactMissing, Store, StoreError, StoreFatal, table_digest
from tests.support.tables import numbered_table as _table


# Raw access to the stored bytes, as a hostile operator (or a failing disk) has it.
def _get(store: Store, rel: str) -> bytes:
    return store._backend.get(rel)


def _put(store: Store, rel: str, data: bytes) -> None:
    store._backend.put(rel, data)


def _rewrite_manifest(store: Store, stage: str, key: str, change) -> None:
    rel = f"{store._dir(stage, key)}/{MANIFEST}"
    m = json.loads(_get(store, rel))
    change(m)
    _put(store, rel, json.dumps(m).encode())


# -- table_digest: one digest, stable through Parquet ------------------------------------


def _nullable(values):
    return st.none() | values


_ITEM = st.fixed_dictionaries({"name": _nullable(st.text(max_size=4)), "score": _nullable(st.floats(allow_nan=False))})
# kind -> (arrow type, one value): scalars, lists, structs, lists of structs, with nulls at
# every level; dictionary-encoded strings.
_KINDS = {
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float": (pa.float64(), st.floats(allow_nan=False)),
    "bool": (pa.bool_(), st.booleans()),
    "str": (pa.string(), st.text(max_size=8)),
    "largestr": (pa.large_string(), st.text(max_size=8)),
    "bytes": (pa.binary(), st.binary(max_size=8)),
    "liststr": (pa.list_(pa.string()), st.lists(_nullable(st.text(max_size=5)), max_size=4)),
    "struct": (
        pa.struct([("a", pa.int64()), ("b", pa.list_(pa.string()))]),
        st.fixed_dictionaries(
            {"a": _nullable(st.integers(-5, 5)), "b": _nullable(st.lists(_nullable(st.text(max_size=3)), max_size=3))}
        ),
    ),
    "liststruct": (
        pa.list_(pa.struct([("name", pa.string()), ("score", pa.float64())])),
        st.lists(_nullable(_ITEM), max_size=3),
    ),
    "dict": (pa.dictionary(pa.int32(), pa.string()), st.sampled_from(["a", "b", "long text"])),
}


@st.composite
def _tables(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(_KINDS)), min_size=1, max_size=4))
    n = draw(st.integers(0, 12))
    data = {}
    for i, kind in enumerate(kinds):
        typ, value = _KINDS[kind]
        data[f"c{i}_{kind}"] = (typ, draw(st.lists(_nullable(value), min_size=n, max_size=n)))
    return data


def _build(data: dict) -> pa.Table:
    return pa.table({name: pa.array(rows, typ) for name, (typ, rows) in data.items()})


def _parquet_round_trip(table: pa.Table) -> pa.Table:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return pq.read_table(io.BytesIO(buf.getvalue()))


def _chunked(table: pa.Table, cuts: list[int]) -> pa.Table:
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    return pa.concat_tables([table.slice(a, b - a) for a, b in zip(bounds, bounds[1:])] or [table])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=_tables(), start=st.integers(0, 12), length=st.integers(0, 12), cuts=st.lists(st.integers(0, 12), max_size=3)
)
def test_table_digest_survives_parquet_slices_and_chunking(data, start, length, cuts):
    table = _build(data)
    want = table_digest(table)
    assert table_digest(_parquet_round_trip(table)) == want
    assert table_digest(_chunked(table, cuts)) == want
    assert table_digest(table.replace_schema_metadata({"writer": "x"})) == want
    # A slice digests like a fresh table of the same rows, before and after Parquet.
    piece = table.slice(start, length)
    fresh = _build({name: (typ, rows[start : start + length]) for name, (typ, rows) in data.items()})
    assert table_digest(piece) == table_digest(fresh) == table_digest(_parquet_round_trip(piece))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_tables(), pick=st.integers(0, 100), other=st.data())
def test_table_digest_changes_with_any_value(data, pick, other):
    names = list(data)
    name = names[pick % len(names)]
    typ, rows = data[name]
    assume(rows)
    row = pick % len(rows)
    kind = name.split("_", 1)[1]
    changed = other.draw(_nullable(_KINDS[kind][1]))
    assume(changed != rows[row])
    mutated = dict(data)
    mutated[name] = (typ, [*rows[:row], changed, *rows[row + 1 :]])
    assert table_digest(_build(mutated)) != table_digest(_build(data))


def test_table_digest_ignores_bytes_under_nulls():
    # A computed array may keep any value under a null slot; Parquet writes none.
    values = pa.py_buffer((1).to_bytes(8, "little") + (99).to_bytes(8, "little") + (3).to_bytes(8, "little"))
    garbage = pa.Array.from_buffers(pa.int64(), 3, [pa.py_buffer(bytes([0b101])), values])
    struct = pa.StructArray.from_arrays([pa.array([1, 2, 3])], names=["a"], mask=pa.array([False, True, False]))
    table = pa.table({"x": garbage, "s": struct})  # struct row 1 is null, its child holds 2
    assert table_digest(table) == table_digest(pa.table({"x": [1, None, 3], "s": [{"a": 1}, None, {"a": 3}]}))
    assert table_digest(table) == table_digest(_parquet_round_trip(table))


def test_shard_digest_is_the_table_digest():
    from t2g.shards import digest

    table = _table(10)
    assert (
        digest(table.slice(3, 4)) == table_digest(_table(4, 3))[:24] == digest(_parquet_round_trip(table.slice(3, 4)))
    )


# -- verified reads -------------------------------------------------------------------------


def _flip_byte(store, stage, key, part):
    rel = f"{store._dir(stage, key)}/{part}"
    data = bytearray(_get(store, rel))
    data[len(data) // 2] ^= 0x01
    _put(store, rel, bytes(data))


def _rewrite_text(store, stage, key, part):
    rel = f"{store._dir(stage, key)}/{part}"
    table = pq.read_table(io.BytesIO(_get(store, rel)))
    texts = table.column("text").to_pylist()
    table = table.set_column(1, "text", pa.array(["forged", *texts[1:]]))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    _put(store, rel, buf.getvalue())


def _truncate(store, stage, key, part):
    rel = f"{store._dir(stage, key)}/{part}"
    data = _get(store, rel)
    _put(store, rel, data[: len(data) // 2])


def _delete_part(store, stage, key, part):
    store._backend.delete(f"{store._dir(stage, key)}/{part}")


def _manifest_rows(store, stage, key, part):
    _rewrite_manifest(store, stage, key, lambda m: m.update(rows=999))


def _manifest_digest(store, stage, key, part):
    _rewrite_manifest(store, stage, key, lambda m: m.update(digest="0" * 64))


def _part_rows(store, stage, key, part):
    # rows edited consistently (part and total): only reading the part can tell
    def change(m):
        m["parts"][1]["rows"] += 1
        m["rows"] += 1

    _rewrite_manifest(store, stage, key, change)


def _manifest_garbage(store, stage, key, part):
    _put(store, f"{store._dir(stage, key)}/{MANIFEST}", b'{"parts": [')


SPOILERS = {
    "flipped byte": (_flip_byte, "part"),
    "rewritten text": (_rewrite_text, "part"),
    "truncated": (_truncate, "part"),
    "missing part": (_delete_part, "part"),
    "part rows edited": (_part_rows, "part"),
    "manifest rows 999": (_manifest_rows, "manifest"),
    "manifest digest zeroed": (_manifest_digest, "manifest"),
    "manifest not JSON": (_manifest_garbage, "manifest"),
}


@pytest.mark.parametrize("spoil", SPOILERS)
def test_corruption_is_detected_named_and_quarantined(store, spoil, caplog):
    fn, where = SPOILERS[spoil]
    store.write("collect", "k", [_table(3), _table(4, 3)])
    part = store.manifest("collect", "k")["parts"][1]["name"]
    uri = store.uri("collect", "k")
    fn(store, "collect", "k", part)
    named = re.escape(f"artifact {uri}: ") + (
        re.escape(f"part {part}: ") if where == "part" else re.escape(f"{MANIFEST}: ")
    )

    with pytest.raises(ArtifactCorrupt, match=named):
        store.read("collect", "k")
    with pytest.raises(ArtifactCorrupt, match=named):
        list(store.iter_parts("collect", "k"))
    assert not isinstance(ArtifactCorrupt("x"), StoreError)  # never retried as transient
    problems = store.verify("collect", "k")
    assert problems and re.match(named, problems[0]), problems

    with caplog.at_level(logging.WARNING, logger="t2g.store"):
        assert store.finished("collect", "k") is None
    (record,) = [r for r in caplog.records if r.name == "t2g.store"]
    assert uri in record.getMessage() and "_quarantine/collect/k-" in record.getMessage()
    assert not store.has("collect", "k")  # no longer finished: the caller recomputes
    moved = store.list_tree("_quarantine")
    assert any(re.fullmatch(r"collect/k-\d{8}T\d{6}\.\d{6}Z/_manifest\.json", n) for n in moved), moved
    assert sum(n.endswith(".parquet") for n in moved) == (1 if spoil == "missing part" else 2)

    ref = store.write("collect", "k", [_table(3), _table(4, 3)])  # the recompute
    assert store.finished("collect", "k") == ref and store.read("collect", "k") == _table(7).combine_chunks()


def test_sound_artifacts_verify_and_are_reused(store):
    ref = store.write("collect", "k", [_table(3), _table(0), _table(2, 3)], files={"report.json": b"{}"})
    assert store.verify("collect", "k") == []
    assert store.finished("collect", "k") == ref
    assert store.finished("collect", "absent") is None
    assert store.artifacts() == [("collect", "k")]


def test_model_files_are_verified(store, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    (model / "model.safetensors").write_bytes(os.urandom(100_000))
    w = store.writer("sft", "m")
    w.add(_table(1))
    w.add_dir(model)
    w.commit({"kind": "model"}, files={"report.md": b"# fine"})
    assert store.read_file("sft", "m", "report.md") == b"# fine"
    assert store.materialize("sft", "m", cache=tmp_path / "cache").joinpath("config.json").read_text() == '{"a": 1}'

    m = store.manifest("sft", "m")
    weights = f"{store._dir('sft', 'm')}/{m['files_dir']}/model.safetensors"
    data = bytearray(_get(store, weights))
    data[500] ^= 0xFF
    _put(store, weights, bytes(data))
    _put(store, f"{store._dir('sft', 'm')}/{m['files_dir']}/report.md", b"# forged")
    uri = re.escape(store.uri("sft", "m"))
    with pytest.raises(ArtifactCorrupt, match=rf"{uri}: file report\.md: digest mismatch"):
        store.read_file("sft", "m", "report.md")
    # The S3 cache holds the sound download: it is checked against the store's manifest
    # too, and a fresh cache fetches the spoiled bytes, which fail.
    with pytest.raises(ArtifactCorrupt, match=rf"{uri}: file model\.safetensors: digest mismatch"):
        store.materialize("sft", "m", cache=tmp_path / "fresh-cache")
    problems = store.verify("sft", "m")
    assert len(problems) == 2 and f"{store.uri('sft', 'm')}: file model.safetensors: digest mismatch" in problems[0]
    assert "file report.md: digest mismatch" in problems[1], problems
    assert store.finished("sft", "m") is None and not store.has("sft", "m")


@pytest.mark.parametrize("plant", ["file", "fifo", "folder"])
def test_a_file_planted_beside_a_local_models_files_fails_verification(tmp_path, plant):
    """A local store serves a model artifact's own folder to the loader, which reads every
    file there: a planted generation_config.json (or tokenizer, adapter) would change what
    the model answers, a FIFO would hang it. Only the files the manifest lists may be there."""
    from tests.support.hang_guard import hang_guard

    store = Store(f"file://{tmp_path / 'store'}")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    w = store.writer("sft", "m")
    w.add(_table(1))
    w.add_dir(model)
    w.commit({"kind": "model"})
    folder = store.materialize("sft", "m")
    planted = folder / "generation_config.json"
    if plant == "file":
        planted.write_text('{"temperature": 2.0}')
    elif plant == "fifo":
        os.mkfifo(planted)
    else:
        planted.mkdir()
    with hang_guard(20):
        with pytest.raises(ArtifactCorrupt, match=r"file 'generation_config\.json': not in the manifest"):
            store.materialize("sft", "m")
        assert "not in the manifest" in store.verify("sft", "m")[0]
        assert store.finished("sft", "m") is None and not store.has("sft", "m")  # quarantined, recomputed


# -- writers that cannot collide ------------------------------------------------------------


def _writer(store: Store, start: threading.Event, delay: float, parts: int, errors: list) -> None:
    try:
        start.wait()
        time.sleep(delay)  # stagger the second writer: not an assertion, a schedule
        w = store.writer("collect", "race")
        for i in range(parts):
            w.add(_table(5, 5 * i))
            time.sleep(0.002)  # a stage produces its parts over time: the reader polls between them
        w.commit({"writer": delay})
    except Exception as exc:  # noqa: BLE001 (reported by the test)
        errors.append(exc)


@pytest.mark.parametrize("stagger_ms", [0, 5, 20, 50])
def test_two_writers_of_one_key_never_expose_a_broken_artifact(store, stagger_ms):
    want = pa.concat_tables([_table(5, 5 * i) for i in range(4)]).combine_chunks()
    start, errors = threading.Event(), []
    writers = [threading.Thread(target=_writer, args=(store, start, d, 4, errors)) for d in (0, stagger_ms / 1000)]
    for t in writers:
        t.start()
    start.set()
    seen = {"missing": 0, "read": 0}
    for _ in range(50_000):  # bounded by count: ends once both writers are done and read back
        done = not any(t.is_alive() for t in writers)
        try:
            got = store.read("collect", "race")  # ArtifactCorrupt on a missing or foreign part
        except ArtifactMissing:
            seen["missing"] += 1
            time.sleep(0.001)  # let the writers run; not an assertion
            continue
        assert got == want
        seen["read"] += 1
        if done:
            break
    for t in writers:
        t.join()
    assert errors == []
    assert store.verify("collect", "race") == [] and store.read("collect", "race") == want
    # Both attempts' parts are still there: no writer deleted the other's.
    names = store._backend.list(store._dir("collect", "race"))
    assert sum(n.startswith("part-") for n in names) == 8, names
    print(f"stagger {stagger_ms} ms: {seen['read']} verified reads, {seen['missing']} before the first manifest")


def test_gc_removes_only_old_unlisted_files(store, tmp_path):
    store.write("collect", "k", [_table(3)], files={"report.json": b"{}"})
    killed = store.writer("collect", "k")  # an attempt that died after one part
    killed.add(_table(2))
    orphan = store.writer("extract", "never")  # a folder without a manifest
    orphan.add(_table(1))
    listed = store.manifest("collect", "k")["parts"][0]["name"]
    base = store._dir("collect", "k")
    if store.root.startswith("file://"):
        root = Path(store.root[len("file://") :])
        stale = time.time() - 2 * 86400
        os.utime(root / base / f"part-{killed.attempt}-00000.parquet", (stale, stale))
        os.utime(root / base / listed, (stale, stale))  # old, but listed: kept
        (root / base / ".x.parquet.tmp-1-ab").write_bytes(b"left by a crash")
        os.utime(root / base / ".x.parquet.tmp-1-ab", (stale, stale))
        grace = 86400.0
        fresh_kept = {f"{store._dir('extract', 'never')}/part-{orphan.attempt}-00000.parquet"}
    else:  # S3 LastModified cannot be set: a grace of 0 makes everything old
        assert store.gc(grace_s=3600).removed == []
        grace, fresh_kept = 0.0, set()

    dry = store.gc(grace_s=grace, dry_run=True)
    assert dry.removed and dry.dry_run
    assert f"part-{killed.attempt}-00000.parquet" in store._backend.list(base)  # dry run removed nothing
    report = store.gc(grace_s=grace)
    assert report.removed == dry.removed
    remaining = set(store._backend.list_tree(""))
    assert f"{base}/part-{killed.attempt}-00000.parquet" not in remaining
    assert f"{base}/{listed}" in remaining and f"{base}/{MANIFEST}" in remaining
    assert fresh_kept <= remaining
    assert not any(".tmp-" in n for n in remaining)
    assert store.verify("collect", "k") == [] and store.read_file("collect", "k", "report.json") == b"{}"


# -- failing fast where a retry cannot help --------------------------------------------------


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)


def _incompressible(n_bytes: int) -> pa.Table:
    return pa.table({"blob": [os.urandom(4096) for _ in range(n_bytes // 4096)]})


def test_disk_full_fails_once_with_the_path_and_leaves_no_tmp(tmp_path):
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "size=256k")
    try:
        store = Store(f"file://{mnt}/store")
        with pytest.raises(StoreFatal) as raised:
            store.write("collect", "big", [_incompressible(64 * 1024), _incompressible(512 * 1024)])
        assert not isinstance(raised.value, StoreError)
        message = str(raised.value)
        assert f"{mnt}/store/collect/big/part-" in message and "disk is full" in message, message
        assert [p for p in mnt.rglob("*") if ".tmp-" in p.name] == []
        assert not store.has("collect", "big")
    finally:
        _umount(mnt)


def test_read_only_store_fails_fast_with_the_path(tmp_path):
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "size=1m")
    try:
        Store(f"file://{mnt}/store").write("collect", "old", [_table(2)])
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        store = Store(f"file://{mnt}/store")
        assert store.read("collect", "old").num_rows == 2  # reading still works
        with pytest.raises(StoreFatal, match=rf"{re.escape(str(mnt))}/store/collect/new.*read-only"):
            store.write("collect", "new", [_table(2)])
    finally:
        _umount(mnt)


def test_missing_bucket_that_may_not_be_created_is_fatal(s3_env):
    bucket_less = "s3://t2g-no-such-bucket-" + s3_env.rsplit("-", 1)[1]
    store = Store(bucket_less, create_bucket=False)
    assert store.finished("collect", "k") is None  # reading an absent bucket finds nothing
    with pytest.raises(StoreFatal, match=r"t2g-no-such-bucket-.*does not exist"):
        store.write("collect", "k", [_table(1)])


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_verify_names_the_corrupt_artifact_and_gc_dry_run_removes_nothing(tmp_path):
    from typer.testing import CliRunner

    from t2g.cli import app

    root = f"file://{tmp_path}/store"
    store = Store(root)
    store.write("collect", "good", [_table(3)])
    store.write("extract", "bad", [_table(3)])
    _truncate(store, "extract", "bad", store.manifest("extract", "bad")["parts"][0]["name"])
    runner = CliRunner()

    result = runner.invoke(app, ["store", "verify", "--store", root])
    assert result.exit_code == 1, result.output
    assert re.search(r"ok\s+collect/good", result.output) and re.search(
        r"CORRUPT\s+extract/bad: .*part part-", result.output
    )
    assert runner.invoke(app, ["store", "verify", "--store", root, "--stage", "collect"]).exit_code == 0

    stray = store.writer("collect", "good")
    stray.add(_table(1))
    result = runner.invoke(app, ["store", "gc", "--store", root, "--grace-hours", "0", "--dry-run"])
    assert result.exit_code == 0 and f"part-{stray.attempt}-00000.parquet" in result.output, result.output
    assert f"part-{stray.attempt}-00000.parquet" in store._backend.list("collect/good")
    result = runner.invoke(app, ["store", "gc", "--store", root, "--grace-hours", "0"])
    assert result.exit_code == 0 and f"part-{stray.attempt}-00000.parquet" not in store._backend.list("collect/good")
