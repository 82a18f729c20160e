"""Training checkpoints mirrored to the store: upload, prune and fetch on a file:// store,
a cut-off upload is never used, GRPO mirrors and resumes too, and an SFT run killed
mid-training resumes on a "new machine" (local work folder deleted) from the checkpoint
in a real S3 (SeaweedFS)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from t2g.checkpoints import (
    MARKER,
    PREFIX,
    checkpoint_store,
    complete_steps,
    fetch,
    last_checkpoint,
    prune,
    remote_prefix,
    resume_from,
    upload,
)
from t2g.config import GrpoConfig
from t2g.runner import execute, stage_key
from t2g.stages.grpo import grpo
from t2g.store import ArtifactRef, Store
from tests.support.faultkit import kill_at
from tests.support.trainkit import reason_table, sft_config, small_tiny_model

REPO = Path(__file__).resolve().parents[2]


def fake_checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    """A checkpoint folder shaped like trl's, with a subfolder as sharded savers write."""
    path = folder / f"checkpoint-{step}"
    (path / "global_step").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(bytes([step]) * 1000)
    (path / "global_step" / "optim_states.pt").write_bytes(b"o" * step)
    if complete:
        (path / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    return path


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"file://{tmp_path}/store")


def test_upload_prunes_to_the_limit_and_fetch_restores_the_newest(store, tmp_path):
    machine_a = tmp_path / "a" / "sft" / "fp1" / "checkpoints"
    prefix = remote_prefix(machine_a)
    assert prefix == f"{PREFIX}/sft/fp1"
    for step in (2, 4, 6):
        upload(store, prefix, fake_checkpoint(machine_a, step))
        prune(store, prefix, keep=2)
    assert sorted(complete_steps(store, prefix)) == [4, 6]

    machine_b = tmp_path / "b" / "sft" / "fp1" / "checkpoints"
    got = fetch(store, prefix, machine_b)
    assert got == machine_b / "checkpoint-6" == last_checkpoint(machine_b)
    assert (got / "global_step" / "optim_states.pt").read_bytes() == b"o" * 6
    assert (got / "model.safetensors").read_bytes() == bytes([6]) * 1000
    assert sorted(p.name for p in machine_b.iterdir()) == ["checkpoint-6"]  # no temporary folder left
    assert fetch(store, prefix, machine_b) is None  # the local one is as new


def test_a_checkpoint_without_its_marker_is_ignored(store, tmp_path):
    local = tmp_path / "w" / "sft" / "fp" / "checkpoints"
    prefix = remote_prefix(local)
    upload(store, prefix, fake_checkpoint(local, 2))
    # An upload killed before its marker: every file there, no _complete.json.
    store.put_tree(f"{prefix}/checkpoint-4", fake_checkpoint(local, 4))
    assert complete_steps(store, prefix) == {2: "checkpoint-2"}
    fresh = tmp_path / "fresh" / "sft" / "fp" / "checkpoints"
    assert fetch(store, prefix, fresh) == fresh / "checkpoint-2"

    # Re-uploading that step replaces the leftover; the next prune drops older steps.
    upload(store, prefix, local / "checkpoint-4")
    prune(store, prefix, keep=1)
    assert complete_steps(store, prefix) == {4: "checkpoint-4"}
    assert not any(rel.startswith("checkpoint-2/") for rel in store.list_tree(prefix))


def test_a_newer_local_checkpoint_wins_and_an_incomplete_one_is_replaced(store, tmp_path):
    local = tmp_path / "w" / "sft" / "fp" / "checkpoints"
    prefix = remote_prefix(local)
    upload(store, prefix, fake_checkpoint(tmp_path / "elsewhere", 4))
    fake_checkpoint(local, 6)
    assert fetch(store, prefix, local) is None and last_checkpoint(local).name == "checkpoint-6"

    other = tmp_path / "v" / "sft" / "fp" / "checkpoints"
    fake_checkpoint(other, 4, complete=False)  # a local save cut off before trainer_state.json
    assert fetch(store, prefix, other) == other / "checkpoint-4"
    assert (other / "checkpoint-4" / "trainer_state.json").is_file()


def test_resume_from_uses_the_store_only_inside_the_context(store, tmp_path):
    local = tmp_path / "w" / "sft" / "fp" / "checkpoints"
    prefix = remote_prefix(local)
    upload(store, prefix, fake_checkpoint(tmp_path / "elsewhere", 4))
    assert resume_from(local) is None  # a stage called directly: local checkpoints only
    with checkpoint_store(store) as session:
        assert resume_from(local) == local / "checkpoint-4"
    session.discard()
    assert store.list_tree(prefix) == []


@pytest.mark.parametrize("bad", ["sft/k/x", "_a/../../x", "_a//b", "/_abs", "_a/b\\c", ""])
def test_loose_paths_stay_out_of_artifacts_and_the_root(store, bad):
    with pytest.raises(ValueError):
        store.put_bytes(bad, b"x")


# --- a real S3 and a real kill -----------------------------------------------------------


# Long enough to be killed mid-way, a checkpoint every 2 steps, the newest 2 kept.
KILLABLE = {"max_steps": 30, "save_steps": 2, "save_total_limit": 2}


def _run(root: str, work: str, reason: dict) -> None:  # the subprocess that gets killed
    execute("sft", sft_config(Path(work), **KILLABLE), [ArtifactRef.from_dict(reason)], Store(root))


def test_killed_sft_resumes_from_s3_after_losing_its_disk(s3_env, tmp_path):
    store = Store(s3_env)
    reason = store.write("reason", "r1", reason_table(12))
    work = tmp_path / "work"
    outcome = kill_at(
        [sys.executable, "-c", f"from tests.t2g.test_checkpoints import _run; _run({s3_env!r}, {str(work)!r}, {reason.to_dict()!r})"],
        REPO, lambda: any(rel.endswith(f"/{MARKER}") for rel in store.list_tree(f"{PREFIX}/sft")), timeout=120, poll=0.1,
    )  # fmt: skip
    assert outcome == "killed", f"the run ended before it could be killed: {outcome}"
    key = stage_key("sft", sft_config(work, **KILLABLE), [reason])
    assert store.ref("sft", key) is None  # killed before the end

    [local] = work.glob("sft/*/checkpoints")
    prefix = remote_prefix(local)
    uploaded = complete_steps(store, prefix)
    assert uploaded, store.list_tree(prefix)
    shutil.rmtree(work)  # the new machine starts with an empty disk

    outcome = execute("sft", sft_config(work, **KILLABLE), [reason], store)
    assert outcome.summary["resumed_from_step"] == max(uploaded) > 0, outcome.summary
    assert outcome.summary["steps"] == 30
    assert store.list_tree(prefix) == []  # spent once the model is an artifact


def test_grpo_mirrors_and_resumes_from_the_store(store, tmp_path):
    student = small_tiny_model(tmp_path / "student")
    cfg = GrpoConfig(max_steps=2, batch_size=4, num_generations=2, max_completion_length=8, save_steps=1,
                     save_total_limit=1, logging_steps=1, work_dir=str(tmp_path / "work"))  # fmt: skip
    with checkpoint_store(store):
        first = grpo(cfg, reason_table(4), student)
    [local] = (tmp_path / "work").glob("grpo/*/checkpoints")
    assert complete_steps(store, remote_prefix(local)) == {2: "checkpoint-2"}  # pruned to the limit

    shutil.rmtree(tmp_path / "work")
    with checkpoint_store(store):
        again = grpo(cfg, reason_table(4), student)
    assert first.summary["resumed_from_step"] == 0 and again.summary["resumed_from_step"] == 2
