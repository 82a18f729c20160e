"""A training stage under a real `accelerate launch`: two CPU processes over gloo train
the tiny SFT student together, only the main rank writes the artifact, and the launch
settings stay out of the cache key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from t2g.config import LaunchSettings
from t2g.launch import LaunchError, launch_env
from t2g.runner import execute, stage_key
from t2g.store import Store
from tests.support.trainkit import reason_table, sft_config

REPO = Path(__file__).resolve().parents[2]
DDP = str(REPO / "configs/accelerate/ddp.yaml")
EXAMPLES, BATCH = 16, 4


# One whole epoch (no max_steps): the steps taken then tell how many processes shared it.
EPOCH = {"epochs": 1, "max_steps": -1, "batch_size": BATCH}


def two_processes(**kw) -> LaunchSettings:
    # Port 0: a free port, so the test never meets another job on 29500.
    return LaunchSettings(accelerate_config=DDP, num_processes=2, extra_args=["--main_process_port", "0"], **kw)


def upstream(store: Store, rows: int = EXAMPLES):
    return store.write("reason", "r" * 24, reason_table(rows))


def test_launch_settings_stay_out_of_the_key_and_the_manifest(tmp_path):
    plain, launched = sft_config(tmp_path, **EPOCH, launch=None), sft_config(tmp_path, **EPOCH, launch=two_processes())
    assert "launch" not in launched.model_dump(mode="json")  # the dump (key, manifest, work folder) is unchanged
    assert plain.model_dump(mode="json") == launched.model_dump(mode="json")
    ref = upstream(Store(f"file://{tmp_path}/store"))
    assert stage_key("sft", plain, [ref]) == stage_key("sft", launched, [ref])


def test_sft_trains_on_two_processes_and_only_the_main_rank_writes(tmp_path):
    store = Store(f"file://{tmp_path}/store")
    ref = upstream(store)
    cfg = sft_config(tmp_path / "work", **EPOCH, launch=two_processes())

    first = execute("sft", cfg, [ref], store)
    assert not first.hit
    # Each rank trains on half of every epoch: half the steps one process would take.
    assert first.summary["processes"] == 2
    assert first.summary["steps"] == math.ceil(EXAMPLES / (BATCH * 2)) == math.ceil(EXAMPLES / BATCH) // 2
    root = tmp_path / "store"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("_")) == ["reason", "sft"]
    assert [p.name for p in (root / "sft").iterdir()] == [first.ref.key]
    assert not [p for p in root.glob("_checkpoints/**/*") if p.is_file()]  # mirrored checkpoints dropped once done
    manifest = store.manifest("sft", first.ref.key)
    assert manifest["kind"] == "model" and "model.safetensors" in manifest["files"]
    assert "launch" not in manifest["config"]
    assert not list((tmp_path / "work").glob("sft/*/base.tmp-*"))  # the ranks' tiny-base race left nothing behind

    again = execute("sft", cfg, [ref], store)
    assert again.hit and again.ref == first.ref and again.summary == first.summary


def test_a_failing_launch_names_the_command_and_shows_stderr(tmp_path):
    store = Store(f"file://{tmp_path}/store")
    bad = store.write("reason", "b" * 24, reason_table(4).drop_columns(["target"]))
    cfg = sft_config(tmp_path / "work", **EPOCH, launch=LaunchSettings(num_processes=1))
    with pytest.raises(LaunchError) as err:
        execute("sft", cfg, [bad], store)
    message = str(err.value)
    assert "accelerate launch exited with code" in message and "-m t2g.rank" in message
    assert "no column(s) ['target']" in message  # the rank's own error, from its stderr
    assert not (tmp_path / "store/sft").exists()


def test_extra_args_cannot_replace_what_the_runner_sets():
    with pytest.raises(ValidationError, match=r"extra_args may not contain \['--num_processes', '-m'\]"):
        LaunchSettings(extra_args=["-m", "other.module", "--num_processes", "4"])


def test_a_missing_accelerate_config_fails_before_launching(tmp_path):
    store = Store(f"file://{tmp_path}/store")
    cfg = sft_config(tmp_path / "work", **EPOCH, launch=LaunchSettings(accelerate_config=str(tmp_path / "nope.yaml")))
    with pytest.raises(LaunchError, match=r"sft.launch.accelerate_config: .*nope.yaml does not exist"):
        execute("sft", cfg, [upstream(store)], store)


def test_the_ranks_get_the_stores_s3_settings_in_their_environment(monkeypatch):
    # Keys handed to the store (a Prefect block does that), not in the environment.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    store = Store("s3://bucket/run", aws_access_key_id="block-key", aws_secret_access_key="block-secret",
                  region_name="eu-west-1", endpoint_url="http://127.0.0.1:8333")  # fmt: skip
    env = launch_env(store)
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("block-key", "block-secret")
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:8333" and env["AWS_REGION"] == "eu-west-1"
    assert "AWS_SESSION_TOKEN" not in env
