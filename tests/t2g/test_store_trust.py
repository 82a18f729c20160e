"""A manifest is trusted only when it verifies: gc never deletes what a manifest that fails
verification might own, and a manifest without its format version (or with an older one)
is corrupt. Over file:// and a real S3 service (SeaweedFS). The threat: someone (or a
faulty tool) who can edit manifests in the store."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from t2g.store import MANIFEST, MANIFEST_FORMAT, ArtifactCorrupt, Store
from tests.support.tables import numbered_table as _table


def _manifest_rel(store: Store, stage: str, key: str) -> str:
    return f"{store._dir(stage, key)}/{MANIFEST}"


def _edit(store: Store, stage: str, key: str, change) -> None:
    """Edit a manifest as someone with write access to the store would: valid JSON."""
    rel = _manifest_rel(store, stage, key)
    m = json.loads(store._backend.get(rel))
    change(m)
    store._backend.put(rel, json.dumps(m).encode())


def _names(store: Store) -> set[str]:
    return set(store._backend.list_tree(""))


def _age_all(store: Store) -> float:
    """Make every file older than the grace period gc is given: set file mtimes back two
    days; on S3 LastModified cannot be set, so gc runs with a grace of 0 instead."""
    if store.root.startswith("file://"):
        root = Path(store.root[len("file://") :])
        stale = time.time() - 2 * 86400
        for p in root.rglob("*"):
            if p.is_file():
                os.utime(p, (stale, stale))
        return 86400.0
    return 0.0


def _model(store: Store, tmp_path: Path, key: str = "m", parts: int = 1) -> None:
    folder = tmp_path / f"model-{key}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(os.urandom(20_000))
    w = store.writer("sft", key)
    for i in range(parts):
        w.add(_table(2, 2 * i))
    w.add_dir(folder)
    w.commit({"kind": "model"}, files={"report.md": b"# fine"})


def _one_char(name: str) -> str:
    """The part name with one character changed (still a valid part name)."""
    i = name.index(".parquet") - 1
    return name[:i] + ("1" if name[i] != "1" else "2") + name[i + 1 :]


# -- gc: an artifact whose manifest fails verification is skipped whole ----------------------


def _rename_part(m):
    m["parts"][0]["name"] = _one_char(m["parts"][0]["name"])


def _wrong_files_dir(m):
    m["files_dir"] = "files/0123456789ab"


def _unparseable(m):
    m.clear()
    m["parts"] = "not a list"


def _no_format(m):
    m.pop("format", None)
    m.pop("digest_format", None)


def _digest_mismatch(m):
    m["parts"][0]["sha256"] = "0" * 64


EDITS = {
    "part renamed by one character": _rename_part,
    "wrong files_dir": _wrong_files_dir,
    "unparseable": _unparseable,
    "no format version": _no_format,
    "digest mismatch": _digest_mismatch,
}


@pytest.mark.parametrize("edit", EDITS)
def test_gc_skips_an_artifact_whose_manifest_fails_verification(store, tmp_path, edit):
    _model(store, tmp_path)
    stray = store.writer("sft", "m")  # a dead attempt's part: garbage, but not while the manifest is in doubt
    stray.add(_table(1))
    store.write("collect", "ok", [_table(3)])
    dead = store.writer("collect", "ok")  # garbage beside a sound manifest: still collected
    dead.add(_table(1))
    base = store._dir("sft", "m")
    before = {n for n in _names(store) if n.startswith(f"{base}/")}
    _edit(store, "sft", "m", EDITS[edit])
    assert store.verify("sft", "m"), "the edit must make verify fail"
    grace = _age_all(store)

    dry = store.gc(grace_s=grace, dry_run=True)
    report = store.gc(grace_s=grace)
    after = _names(store)
    assert before <= after, sorted(before - after)  # not one file of the doubtful artifact went
    assert [s.split(":")[0] for s in report.skipped] == ["sft/m"], report.skipped
    assert "manifest fails verification: " in report.skipped[0]
    assert f"{store._dir('collect', 'ok')}/part-{dead.attempt}-00000.parquet" not in after  # gc still works elsewhere
    assert dry.removed == report.removed and dry.skipped == report.skipped
    assert not any(base in uri for uri in report.removed)


def test_gc_deletes_an_old_model_folder_only_for_a_verified_manifest(store, tmp_path):
    _model(store, tmp_path)
    first = store.manifest("sft", "m")
    _model(store, tmp_path / "again")  # a second attempt wins: the first one's folder is garbage
    second = store.manifest("sft", "m")
    base = store._dir("sft", "m")
    grace = _age_all(store)
    report = store.gc(grace_s=grace)
    after = _names(store)
    assert not any(n.startswith(f"{base}/{first['files_dir']}/") for n in after)
    assert {f"{base}/{second['files_dir']}/{n}" for n in second["files"]} <= after
    assert report.skipped == [] and store.verify("sft", "m") == []


def test_gc_keeps_what_carries_the_manifests_attempt(store, tmp_path):
    """A manifest that verifies but no longer lists its own files (edited to `files: {}`):
    its attempt's folder and parts are still its own, and gc keeps them."""
    _model(store, tmp_path)
    m = store.manifest("sft", "m")
    base = store._dir("sft", "m")
    before = {n for n in _names(store) if n.startswith(f"{base}/")}
    _edit(store, "sft", "m", lambda m: m.update(files={}))
    # Its parts verify; a local store serves the files folder whole, so there the files
    # it no longer lists fail verification (S3 serves the listed ones only).
    assert all("not in the manifest" in p for p in store.verify("sft", "m"))
    store.gc(grace_s=_age_all(store))
    assert before <= _names(store), m["files_dir"]


def test_cli_gc_dry_run_lists_exactly_what_the_run_removes_and_names_the_skipped(tmp_path):
    from t2g.cli import app

    root = f"file://{tmp_path}/store"
    store = Store(root)
    store.write("collect", "good", [_table(3)])
    store.write("extract", "edited", [_table(3)])
    for key in ("good", "edited"):
        stage = "collect" if key == "good" else "extract"
        w = store.writer(stage, key)
        w.add(_table(1))
    _edit(store, "extract", "edited", _rename_part)
    runner = CliRunner()
    dry = runner.invoke(app, ["store", "gc", "--store", root, "--grace-hours", "0", "--dry-run"])
    real = runner.invoke(app, ["store", "gc", "--store", root, "--grace-hours", "0"])
    assert dry.exit_code == real.exit_code == 1, (dry.output, real.output)
    strip = lambda out: sorted(line.replace("would remove ", "removed ") for line in out.splitlines())  # noqa: E731
    assert strip(dry.output) == strip(real.output)
    assert "skipped: extract/edited: manifest fails verification: " in real.output
    assert sum(line.startswith("removed file://") for line in real.output.splitlines()) == 1, real.output
    assert len(store._backend.list("extract/edited")) == 3  # the manifest, its real part, the stray: all kept


# -- manifests carry their format version --------------------------------------------------------


def _strip_digests_and_forge(store: Store, stage: str, key: str) -> None:
    """Item 4 of issue 25: delete `digest_format` and every part's sha256, then rewrite
    the part with other rows (same count)."""
    m = json.loads(store._backend.get(_manifest_rel(store, stage, key)))
    _edit(
        store,
        stage,
        key,
        lambda m: [m.pop("digest_format", None), m.pop("format", None)] + [p.pop("sha256") for p in m["parts"]],
    )
    rel = f"{store._dir(stage, key)}/{m['parts'][0]['name']}"
    table = pq.read_table(io.BytesIO(store._backend.get(rel)))
    texts = table.column("text").to_pylist()
    table = table.set_column(
        table.schema.get_field_index("text"), "text", pa.array(["forged", *texts[1:]], table.schema.field("text").type)
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)  # the same rows count and schema, other content
    store._backend.put(rel, buf.getvalue())


def test_a_manifest_without_digests_is_corrupt(store, caplog):
    store.write("collect", "k", [_table(3)])
    _strip_digests_and_forge(store, "collect", "k")
    problems = store.verify("collect", "k")
    assert problems and "format" in problems[0], problems
    with pytest.raises(ArtifactCorrupt, match="format"):
        store.read("collect", "k")
    with pytest.raises(ArtifactCorrupt):
        list(store.iter_parts("collect", "k"))
    with caplog.at_level(logging.WARNING, logger="t2g.store"):
        assert store.finished("collect", "k") is None  # quarantined: the caller recomputes
    assert not store.has("collect", "k") and store.list_tree("_quarantine")
    store.write("collect", "k", [_table(3)])
    assert store.read("collect", "k") == _table(3)


@pytest.mark.parametrize("version", [None, 0, 1, MANIFEST_FORMAT - 1, MANIFEST_FORMAT + 1, str(MANIFEST_FORMAT), True])
def test_a_missing_older_or_unknown_format_is_corrupt(tmp_path, version):
    store = Store(f"file://{tmp_path}/store")
    store.write("collect", "k", [_table(3)])
    assert json.loads(store._backend.get(_manifest_rel(store, "collect", "k")))["format"] == MANIFEST_FORMAT
    _edit(store, "collect", "k", lambda m: m.pop("format") if version is None else m.update(format=version))
    with pytest.raises(ArtifactCorrupt, match="format"):
        store.manifest("collect", "k")
    assert store.finished("collect", "k") is None and not store.has("collect", "k")


DROPS = {
    "a part's sha256": lambda m: m["parts"][0].pop("sha256"),
    "a part's digest": lambda m: m["parts"][0].update(digest=None),
    "a file's sha256": lambda m: m["files"].update({"report.json": ""}),
    "the attempt": lambda m: m.pop("attempt"),
    "the schema": lambda m: m.pop("schema"),
}


@pytest.mark.parametrize("drop", DROPS)
def test_the_current_format_needs_every_digest(tmp_path, drop):
    """`format` alone is not enough: a manifest of the current format that lacks a digest
    (or what ties its names to the writer) is corrupt too."""
    store = Store(f"file://{tmp_path}/store")
    store.write("collect", "k", [_table(3)], files={"report.json": b"{}"})
    _edit(store, "collect", "k", DROPS[drop])
    with pytest.raises(ArtifactCorrupt, match=r"_manifest\.json: "):
        store.manifest("collect", "k")


def test_a_manifest_written_by_the_previous_code_is_recomputed_once(tmp_path):
    """A store written before format versions: each artifact is corrupt once (quarantined,
    recomputed), then its rewrite is a plain cache hit."""
    store = Store(f"file://{tmp_path}/store")
    store.write("collect", "k", [_table(3)])
    _edit(store, "collect", "k", lambda m: m.pop("format"))  # what the previous writer wrote: digest_format 2 only
    assert store.finished("collect", "k") is None
    store.write("collect", "k", [_table(3)])
    assert store.finished("collect", "k") is not None and store.verify("collect", "k") == []


def test_a_run_recomputes_a_forged_artifact_without_digests(tmp_path, caplog):
    """Through the stage runner: the forged collect artifact is quarantined and rerun, and
    the rerun's content digest is the original one."""
    from t2g.config import load_recipe
    from t2g.runner import execute
    from tests.support.flowrun import SMALL, TINY

    store = Store(f"file://{tmp_path}/store")
    recipe = load_recipe(TINY, overrides=SMALL)
    first = execute("collect", recipe.collect, [], store)
    digest = store.manifest("collect", first.ref.key)["digest"]
    _strip_digests_and_forge(store, "collect", first.ref.key)
    with caplog.at_level(logging.WARNING, logger="t2g.store"):
        again = execute("collect", recipe.collect, [], store)
    assert not again.hit and again.ref == first.ref
    assert store.manifest("collect", first.ref.key)["digest"] == digest and store.verify("collect", first.ref.key) == []
    assert any(
        "no format version" in r.getMessage() and "_quarantine/collect/" in r.getMessage() for r in caplog.records
    )


# -- property: no single edit of a manifest makes gc delete what the artifact owned -------------


def _paths(node, prefix=()):
    """Every path (keys and indices) in a JSON value, leaves and containers alike."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def _edits(draw, m):
    path = draw(st.sampled_from([p for p in _paths(m) if p]))
    parent = m
    for step in path[:-1]:
        parent = parent[step]
    value = parent[path[-1]]
    ops = (
        ["replace"]
        + (["delete"] if isinstance(parent, dict) else [])
        + (["one char"] if isinstance(value, str) and value else [])
    )
    op = draw(st.sampled_from(ops))
    if op == "delete":
        return path, op, None
    if op == "one char":
        i = draw(st.integers(0, len(value) - 1))
        return path, op, value[:i] + draw(st.sampled_from("0a1fz_.-/").filter(lambda c: c != value[i])) + value[i + 1 :]
    return (
        path,
        op,
        draw(
            st.none() | st.booleans() | st.integers(-2, 5) | st.text("0af-/._", max_size=20) | st.just([]) | st.just({})
        ),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_single_manifest_edit_lets_gc_delete_what_the_artifact_owned(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("edit")
    store = Store(f"file://{tmp}/store")
    _model(store, tmp, parts=2)
    owned = _names(store)
    stray = store.writer("sft", "m")  # garbage a sound manifest lets gc remove
    stray.add(_table(1))
    rel = _manifest_rel(store, "sft", "m")
    m = json.loads(store._backend.get(rel))
    path, op, value = data.draw(_edits(m))
    parent = m
    for step in path[:-1]:
        parent = parent[step]
    if op == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    store._backend.put(rel, json.dumps(m).encode())

    dry = store.gc(grace_s=0, dry_run=True)
    report = store.gc(grace_s=0)
    assert owned <= _names(store), (path, op, value, report)
    assert dry.removed == report.removed and dry.skipped == report.skipped
    if store.verify("sft", "m"):  # the edit broke the manifest: gc left the whole artifact alone
        assert report.skipped and report.removed == [], (path, op, value)


def test_metadata_cannot_set_what_the_writer_vouches_for(tmp_path):
    """A stage's metadata lands in the manifest beside the writer's fields: it may not
    replace them (before: `meta={"parts": []}` wrote a manifest that disowned its parts)."""
    store = Store(f"file://{tmp_path}/store")
    for field in ("parts", "format", "files_dir"):
        with pytest.raises(ValueError, match=f"may not set {field}"):
            store.write("collect", "k", [_table(2)], meta={field: []})
    assert not store.has("collect", "k")
    store.write("collect", "k", [_table(2)], meta={"summary": {"rows": 2}})
    assert store.manifest("collect", "k")["summary"] == {"rows": 2}


# -- what lies in the folders -----------------------------------------------------------


@pytest.mark.parametrize("where", ["in place", "linked from outside"])
def test_a_fifo_in_place_of_a_part_or_manifest_is_corrupt_not_a_hang(tmp_path, where):
    """Someone who can write the store puts a FIFO (or a link to one) where a part or a
    manifest was: opening it would wait for a writer forever, in verify, gc and every run
    that checks the artifact. It is no artifact file: corrupt, quarantined, recomputed."""
    from tests.support.hang_guard import hang_guard

    store = Store(f"file://{tmp_path / 'store'}")
    folder = tmp_path / "store" / "collect"

    def plant(path: Path) -> None:
        path.unlink()
        if where == "in place":
            os.mkfifo(path)
        else:
            fifo = tmp_path / f"outside-{path.name}"
            os.mkfifo(fifo)
            path.symlink_to(fifo)

    store.write("collect", "parts", _table(3))
    plant(next((folder / "parts").glob("part-*.parquet")))
    store.write("collect", "manifest", _table(3))
    plant(folder / "manifest" / MANIFEST)
    with hang_guard(20):
        assert "part-" in store.verify("collect", "parts")[0]
        with pytest.raises(ArtifactCorrupt, match="missing"):
            store.read("collect", "parts")
        assert store.finished("collect", "parts") is None  # quarantined
        assert store.finished("collect", "manifest") is None and not store.has("collect", "manifest")
        assert store.artifacts() == []
        store.gc(grace_s=0, dry_run=True)  # lists, and reads no FIFO
    assert any(n.startswith("collect/parts-") for n in store.list_tree("_quarantine"))
