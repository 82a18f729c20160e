"""The artifact store over file:// and a real S3 service (SeaweedFS)."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from t2g.store import ArtifactMissing, ArtifactRef, Store, StoreError, check_name
from tests.support.tables import numbered_table as _table


def test_write_then_read_round_trips_parts_and_manifest(store):
    ref = store.write(
        "collect", "k1", [_table(3), _table(2, 3)], meta={"config": {"a": 1}}, files={"report.json": b"{}"}
    )
    assert ref == ArtifactRef(uri=store.uri("collect", "k1"), stage="collect", key="k1", rows=5)
    assert store.read("collect", "k1").column("x").to_pylist() == [0, 1, 2, 3, 4]
    assert [t.num_rows for t in store.iter_parts("collect", "k1")] == [3, 2]
    m = store.manifest("collect", "k1")
    assert m["rows"] == 5 and m["config"] == {"a": 1} and len(m["parts"]) == 2
    assert m["schema"] == [{"name": "id", "type": "string"}, {"name": "text", "type": "string"},
                           {"name": "tags", "type": "list<item: string>"}, {"name": "x", "type": "int64"}]  # fmt: skip
    assert store.read_file("collect", "k1", "report.json") == b"{}"
    assert ArtifactRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


def test_content_digest_depends_on_data_not_on_chunking(store):
    a = store.write("s", "a", [_table(4)])
    b = store.write("s", "b", [pa.concat_tables([_table(2), _table(2, 2)])])
    c = store.write("s", "c", [_table(4, 1)])
    digest = lambda ref: store.manifest(ref.stage, ref.key)["digest"]  # noqa: E731
    assert digest(a) == digest(b) != digest(c)


def test_artifact_without_manifest_is_invisible_and_written_anew(store):
    w = store.writer("extract", "half")
    w.add(_table(3))  # a killed attempt: a part, no manifest
    assert not store.has("extract", "half") and store.ref("extract", "half") is None
    with pytest.raises(ArtifactMissing):
        store.read("extract", "half")
    ref = store.write("extract", "half", [_table(1)])  # the next attempt writes its own parts
    assert store.read("extract", "half").num_rows == 1
    (part,) = store.manifest("extract", "half")["parts"]
    assert re.fullmatch(r"part-[0-9a-f]{12}-00000\.parquet", part["name"]) and part["rows"] == 1
    # The killed attempt's part is left alone (another writer may still be at work) and
    # unread; gc removes it once it is older than the grace period.
    assert f"part-{w.attempt}-00000.parquet" in store._backend.list(store._dir("extract", "half"))
    assert store.finished("extract", "half") == ref


def test_stray_parts_are_never_read(store):
    store.write("s", "k", [_table(2)])
    w = store.writer("s", "k")  # a second attempt killed after one part
    w.add(_table(5))
    # It deleted nothing: the finished artifact stands, and its stray part is not read.
    assert store.read("s", "k").column("x").to_pylist() == [0, 1]
    assert store.verify("s", "k") == []


def test_get_many_answers_in_order_with_none_for_the_absent(store):
    # The LLM cache's lookups go as one batch: a pool of GETs on S3, one by one on a folder.
    names = [f"_llm_cache/{i:02d}/e{i}.json" for i in range(40)]
    for i, name in enumerate(names[::2]):
        store.put_bytes(name, f"entry {2 * i}".encode())
    got = store.get_many(names)
    assert got == [f"entry {i}".encode() if i % 2 == 0 else None for i in range(40)]
    assert store.get_many([]) == []


def test_empty_artifact_keeps_its_schema(store):
    store.write("s", "empty", [_table(0)])
    t = store.read("s", "empty")
    assert t.num_rows == 0 and t.column_names == ["id", "text", "tags", "x"]


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "/abs", "A", "", "x" * 65, "s3:", "%2e%2e", "a\x00b", "ü"])
def test_names_cannot_escape_the_root(bad, tmp_path):
    store = Store(f"file://{tmp_path}/store")
    with pytest.raises(ValueError):
        check_name(bad, "key")
    with pytest.raises(ValueError):
        store.write(bad, "k", [_table(1)])
    with pytest.raises(ValueError):
        store.write("s", bad, [_table(1)])
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", ["../f", "a/b", "_manifest.json", ".hidden"])
def test_extra_file_names_are_checked(bad, tmp_path):
    with pytest.raises(ValueError):
        Store(f"file://{tmp_path}").write("s", "k", [_table(1)], files={bad: b"x"})


@pytest.mark.parametrize("root", ["ftp://x/y", "s3://", "s3://bucket/../up", "http://h/p"])
def test_bad_roots_are_refused(root):
    with pytest.raises(ValueError):
        Store(root)


def test_s3_outage_fails_with_the_uri(seaweedfs, monkeypatch):
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = Store("s3://t2g-test/down")
    with pytest.raises(StoreError, match=r"s3://t2g-test/down/collect/k"):
        store.write("collect", "k", [_table(1)])


def test_model_folders_round_trip(store, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    (model / "model.safetensors").write_bytes(b"\0" * 3_000_000)
    w = store.writer("sft", "m1")
    w.add(_table(1))
    w.add_dir(model)
    w.commit({"kind": "model"})
    local = store.materialize("sft", "m1", cache=tmp_path / "cache")
    assert (local / "config.json").read_text() == '{"a": 1}'
    assert (local / "model.safetensors").stat().st_size == 3_000_000
    assert set(store.manifest("sft", "m1")["files"]) == {"config.json", "model.safetensors"}
    assert store.materialize("sft", "m1", cache=tmp_path / "cache") == local  # downloaded once
