"""What the graph branch's command line reads: --model as a store artifact (folder or
URI, through its verified manifest), --input streamed from JSONL, Parquet or a folder of
texts, and the grounding guard of `t2g extract`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g.kg.guard import drop_ungrounded
from t2g.kg.inputs import InputError, batches, check, documents
from t2g.kg.models import ModelRefError, artifact_model
from t2g.metrics import normalise
from t2g.store import Store


def _model_artifact(tmp_path, stage="grpo", key="k1"):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"weights")
    store = Store((tmp_path / "store").as_uri())
    writer = store.writer(stage, key)
    writer.add(pa.table({"step": [1]}))
    writer.add_dir(folder)
    ref = writer.commit({"kind": "model"})
    return store, ref


def test_a_model_artifact_folder_or_uri_resolves_to_its_files(tmp_path):
    store, ref = _model_artifact(tmp_path)
    artifact_dir = tmp_path / "store" / "grpo" / "k1"
    assert not (artifact_dir / "config.json").exists()  # why the folder itself failed before
    for given_as in (artifact_dir, str(artifact_dir) + "/", ref.uri):
        folder = artifact_model(given_as)
        assert (folder / "config.json").is_file() and (folder / "model.safetensors").read_bytes() == b"weights", (
            given_as
        )


def test_a_tampered_or_table_artifact_is_refused(tmp_path):
    store, ref = _model_artifact(tmp_path)
    folder = artifact_model(ref.uri)
    (folder / "model.safetensors").write_bytes(b"other")
    with pytest.raises(Exception, match="model.safetensors"):
        artifact_model(ref.uri)
    table = store.write("filter", "k2", pa.table({"x": [1]}))
    with pytest.raises(ModelRefError, match="is a table, not a model"):
        artifact_model(table.uri)
    with pytest.raises(ModelRefError, match="no finished artifact"):
        artifact_model((tmp_path / "store").as_uri() + "/grpo/missing")


def test_a_plain_folder_or_hub_name_passes_through(tmp_path):
    assert artifact_model(str(tmp_path)) == str(tmp_path)
    assert artifact_model("org/model") == "org/model"


texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(lambda t: t.strip())


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(texts, min_size=1, max_size=12), size=st.integers(1, 5))
def test_jsonl_parquet_and_folder_inputs_stream_every_text_in_order(tmp_path_factory, rows, size):
    tmp = tmp_path_factory.mktemp("in")
    jsonl = tmp / "in.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"id": f"x{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(rows)),
        encoding="utf-8",
    )
    parquet = tmp / "in.parquet"
    pq.write_table(pa.table({"id": [f"x{i}" for i in range(len(rows))], "text": rows}), parquet)
    folder = tmp / "txt"
    folder.mkdir()
    for i, t in enumerate(rows):
        (folder / f"x{i:03d}.txt").write_bytes(t.encode("utf-8"))
    for path in (jsonl, parquet):
        got = [r for b in batches(documents(path), size) for r in b]
        assert [(r["id"], r["text"]) for r in got] == [(f"x{i}", t) for i, t in enumerate(rows)]
        assert check(path) == len(rows)
    assert [r["text"] for r in documents(folder)] == rows


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "has no texts"),
        ('{"text": "ok"}\n{"text": ""}\n', "line 2: 'text' is empty"),
        ('{"text": "ok"}\n{"t": 1}\n', "line 2: every line"),
    ],
)
def test_a_bad_input_names_its_line(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        check(path)


def test_bad_rows_are_quarantined_with_where_and_why_when_the_caller_asks(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [b'\xef\xbb\xbf{"id": "a", "text": "BOM first."}', b'{"text": "caf\xe9 latin-1"}', b"{broken",
             b'{"text": ""}', b'["x"]', b"", b'{"id": "b", "text": "Fine."}']  # fmt: skip
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(InputError, match="line 2: not UTF-8"):
        check(path)
    bad: list = []
    assert [(r["id"], r["text"]) for r in documents(path, bad=bad)] == [("a", "BOM first."), ("b", "Fine.")]
    assert [(b.where.rsplit(" ", 1)[1], b.reason.split(" (")[0]) for b in bad] == [
        ("2", "not UTF-8"), ("3", "not JSON"), ("4", "'text' is empty"),
        ("5", "every line must be a JSON object with a string 'text'"),
    ]  # fmt: skip
    assert bad[0].raw == '{"text": "caf\\xe9 latin-1"}\n' and bad[1].raw == "{broken\n"  # nothing lost
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "a.txt").write_text("Good text.", encoding="utf-8")
    (folder / "b.txt").write_bytes(b"caf\xe9")
    (folder / "c.txt").write_text("  \n", encoding="utf-8")
    bad = []
    assert [r["id"] for r in documents(folder, bad=bad)] == ["a.txt"]
    assert [(b.where.endswith(n), b.raw) for b, n in zip(bad, ("b.txt", "c.txt"))] == [(True, None)] * 2
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text('{"text": " "}\n', encoding="utf-8")
    with pytest.raises(InputError, match="has no texts \\(1 bad, none good\\)"):
        check(only_bad, bad=[])


def test_a_second_document_with_a_seen_id_is_quarantined_not_merged(tmp_path):
    from t2g.kg.build import read_chunks, write_quarantine
    from t2g.kg.config import ChunkConfig

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in [(1, "A."), ("1", "B."), (2, "C.")]))
    bad: list = []
    chunks, n = read_chunks(path, ChunkConfig(max_tokens=8, overlap_tokens=0), bad)
    assert n == 2 and chunks.column("text").to_pylist() == ["A.", "C."]
    assert [(b.where, b.reason) for b in bad] == [
        (f"--input {path} id '1'", "the id appears twice: ids must be unique")
    ]
    written = write_quarantine(tmp_path, bad)
    assert json.loads(written.read_text())["raw"] == '{"id": "1", "text": "B."}'
    assert write_quarantine(tmp_path, []) is None and not written.exists()  # a clean rebuild clears it


def test_a_null_or_nan_id_is_no_id_the_row_keeps_its_number(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": null, "text": "A."}\n{"id": NaN, "text": "B."}\n{"id": null, "text": "C."}\n')
    assert [r["id"] for r in documents(path)] == [1, 2, 3]
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", None, None], "text": ["A.", "B.", "C."]}), parquet)
    assert [r["id"] for r in documents(parquet)] == ["a", 2, 3]


def test_a_parquet_file_without_text_is_refused(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(InputError, match="no 'text' column"):
        check(path)


def test_the_readmes_jolie_answer_is_dropped():
    text = "Satya Nadella, the chief executive of Microsoft, visited Paris on Monday."
    answer = {"entities": [{"text": "Jolie", "type": "person"}] * 5 + [{"text": "Microsoft", "type": "organisation"}],
              "relations": [{"head": "Jolie", "tail": "Microsoft", "type": "works_for"}]}  # fmt: skip
    kept, gone = drop_ungrounded(answer, text)
    assert (
        gone == ["Jolie"]
        and kept["entities"] == [{"text": "Microsoft", "type": "organisation"}]
        and kept["relations"] == []
    )


names = st.text(st.sampled_from("ab cAB.-é"), max_size=6)


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.sampled_from("ab cAB.-é"), max_size=30), ents=st.lists(names, max_size=6))
def test_every_entity_kept_is_in_the_text_and_every_relation_names_kept_ones(text, ents):
    record = {"entities": [{"text": e, "type": "t"} for e in ents],
              "relations": [{"head": a, "tail": b, "type": "r"} for a in ents for b in ents]}  # fmt: skip
    kept, gone = drop_ungrounded(record, text)
    names_kept = {e["text"] for e in kept["entities"]}
    assert all(normalise(n) and normalise(n) in normalise(text) for n in names_kept)
    assert all(r["head"] in names_kept and r["tail"] in names_kept for r in kept["relations"])
    assert set(gone) | names_kept == set(ents) and not set(gone) & names_kept


def test_a_folder_is_read_by_the_text_source_rules_symlinks_fifos_and_system_paths(tmp_path):
    import os

    outside = tmp_path / "secret.txt"
    outside.write_text("SECRET outside the folder.", encoding="utf-8")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Alpha met Beta.", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("Gamma.", encoding="utf-8")
    os.symlink(outside, folder / "link.txt")
    os.mkfifo(folder / "pipe.txt")  # opened, it would block the command forever
    bad: list = []
    rows = list(documents(folder, bad=bad))
    assert [(r["id"], r["text"]) for r in rows] == [("a.txt", "Alpha met Beta."), ("sub/b.txt", "Gamma.")]
    assert sorted((b.where.rsplit("/", 1)[1], b.reason) for b in bad) == [
        ("link.txt", "symlink not followed"),
        ("pipe.txt", "not a regular file: fifo"),
    ]
    assert not any("SECRET" in str(b) for b in bad)
    for system in ("/proc/self", "/dev/stdin"):
        with pytest.raises(InputError, match="/proc, /sys or /dev"):
            check(Path(system), bad=[])


def test_a_jsonl_line_over_the_limit_is_left_out_unread(tmp_path, monkeypatch):
    from t2g.kg import inputs

    monkeypatch.setattr(inputs, "FILE_BYTES", 64)
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "x" * 500}) + "\n" + json.dumps({"id": "ok", "text": "Fine."}) + "\n")
    bad: list = []
    assert [r["id"] for r in documents(path, bad=bad)] == ["ok"]
    assert bad[0].reason.startswith("line too long") and bad[0].where.endswith("line 1") and len(bad[0].raw) < 100


def test_a_lone_surrogate_in_a_jsonl_text_or_id_is_a_bad_row_not_a_crash(tmp_path):
    # json.loads accepts "\ud800", but Arrow (UTF-8) cannot store it: building the chunk
    # table raised UnicodeEncodeError and the whole graph was lost for one line.
    from t2g.kg.build import read_chunks
    from t2g.kg.config import ChunkConfig

    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "text": "x \\ud800 y"}\n{"id": "\\udc00", "text": "Fine."}\n'
                    '{"id": "b", "text": "Good."}\n', encoding="utf-8")  # fmt: skip
    with pytest.raises(InputError, match="line 1: 'text' holds a lone surrogate"):
        check(path)
    bad: list = []
    chunks, n = read_chunks(path, ChunkConfig(max_tokens=8, overlap_tokens=0), bad)
    assert n == 1 and chunks.column("doc_id").to_pylist() == ["b"]
    assert [(b.where.rsplit(" ", 1)[1], b.reason.split(" (")[0]) for b in bad] == [
        ("1", "'text' holds a lone surrogate"), ("2", "'id' holds a lone surrogate"),
    ]  # fmt: skip


def test_a_txt_file_whose_name_is_not_utf8_keeps_its_text_under_an_escaped_id(tmp_path):
    # Linux file names are bytes: Python hands an undecodable one over with surrogates,
    # which Arrow cannot store (the build crashed) and the quarantine file could not write.
    import os

    from t2g.kg.build import read_chunks, write_quarantine
    from t2g.kg.config import ChunkConfig

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha.", encoding="utf-8")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "w", encoding="utf-8") as fh:
        fh.write("Beta.")
    with open(os.path.join(os.fsencode(folder), b"empty\xff.txt"), "w", encoding="utf-8") as fh:
        fh.write(" ")
    bad: list = []
    chunks, n = read_chunks(folder, ChunkConfig(max_tokens=8, overlap_tokens=0), bad)
    assert n == 2 and chunks.column("doc_id").to_pylist() == ["a.txt", "caf\\xe9.txt"]
    assert [(b.where.rsplit("/", 1)[1], b.reason) for b in bad] == [("empty\\xff.txt", "the file is empty")]
    assert json.loads(write_quarantine(tmp_path, bad).read_text())["where"].endswith("empty\\xff.txt")
