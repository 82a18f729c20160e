"""The data flow as users run it: `t2g run`, cached, against file:// and S3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3

from tests.support.flowrun import run_t2g, small_args
from tests.support.prefect_server import QUIET


def test_embedded_default_rerun_is_all_cache_hits_and_a_filter_change_reruns_only_filter(tmp_path):
    """Prefect's ephemeral API and the file:// store, as `make demo` runs them."""
    home_a, home_b = tmp_path / "prefect-a", tmp_path / "prefect-b"
    env_a = {**QUIET, "PREFECT_HOME": str(home_a), "PREFECT_API_URL": ""}
    first = run_t2g(small_args(), tmp_path, env_a)
    assert first.returncode == 0, first.output
    assert list(first.stages) == ["collect", "extract", "filter"]
    assert not any(s["hit"] for s in first.stages.values())
    assert (tmp_path / ".t2g" / "store" / "filter").is_dir()

    second = run_t2g(small_args(), tmp_path, env_a)
    assert second.returncode == 0, second.output
    assert all(s["hit"] for s in second.stages.values()), second.output
    assert {k: v["rows"] for k, v in second.stages.items()} == {k: v["rows"] for k, v in first.stages.items()}
    print(f"first run {first.seconds:.1f} s, cached rerun {second.seconds:.1f} s")

    # A wiped Prefect database (fresh PREFECT_HOME) still finds the work in the store,
    # and changing a filter setting reruns filter and only what is downstream of it.
    env_b = {**env_a, "PREFECT_HOME": str(home_b)}
    third = run_t2g(small_args("filter.max_entities=3"), tmp_path, env_b)
    assert third.returncode == 0, third.output
    hits = {k: v["hit"] for k, v in third.stages.items()}
    assert hits == {"collect": True, "extract": True, "filter": False}, third.output
    assert third.stages["filter"]["uri"] != first.stages["filter"]["uri"]


def test_data_flow_against_s3_leaves_parts_and_manifests(tmp_path, prefect_server, s3_env):
    run = run_t2g(
        [*small_args(until="reason"), "--store", s3_env], tmp_path, prefect_server.env() | _aws_env(), timeout=600
    )
    assert run.returncode == 0, run.output
    assert all(s["uri"].startswith(s3_env + "/") for s in run.stages.values())
    bucket, prefix = s3_env[len("s3://") :].split("/", 1)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    for stage in ("collect", "extract", "filter", "reason", "collect-quarantine", "filter-dropped"):
        assert any(k.startswith(f"{prefix}/{stage}/") and k.endswith("/_manifest.json") for k in keys), stage
        assert any(k.startswith(f"{prefix}/{stage}/") and k.endswith(".parquet") for k in keys), stage

    # The UI shows each stage's counts and drop reasons under stable artifact keys.
    prefect = str(Path(sys.executable).with_name("prefect"))
    for key in ("t2g-collect-counts", "t2g-filter-counts", "t2g-filter-summary"):
        shown = subprocess.run(
            [prefect, "artifact", "inspect", key],
            env={**os.environ, **prefect_server.env()},
            capture_output=True,
            text=True,
        )
        assert shown.returncode == 0 and key in shown.stdout, shown.stdout + shown.stderr
        if key == "t2g-filter-counts":
            assert "rows in" in shown.stdout and "dropped" in shown.stdout


def _aws_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}


def test_storage_outage_fails_after_retries_naming_the_uri(tmp_path, prefect_server):
    env = prefect_server.env() | {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: a storage outage
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    args = small_args("retries.attempts=2", "retries.backoff_s=0.1", until="collect")
    run = run_t2g([*args, "--store", "s3://down/prefix"], tmp_path, env)
    assert run.returncode != 0
    assert "s3://down/prefix/collect/" in run.output.strip().splitlines()[-1], run.output
    # transient: retried twice with backoff, then failed
    assert "Retry 1/2" in run.output and "Retry 2/2" in run.output and "Retries are exhausted" in run.output


def test_a_bad_source_fails_at_once_naming_it(tmp_path, prefect_server):
    args = small_args("collect.sources.0={name: news, kind: jsonl, path: missing.jsonl}", until="collect")
    run = run_t2g(args, tmp_path, prefect_server.env())
    assert run.returncode != 0
    assert "news" in run.output and "missing.jsonl" in run.output
    assert "Retry 1/" not in run.output, run.output  # not transient: no retry


def test_s3_credentials_from_a_prefect_block(tmp_path, prefect_server, seaweedfs):
    """Keys kept in a Prefect AwsCredentials block, none in the environment."""
    creds = seaweedfs.env()
    make_block = (
        "from prefect_aws import AwsCredentials, AwsClientParameters\n"
        f"AwsCredentials(aws_access_key_id={creds['AWS_ACCESS_KEY_ID']!r}, aws_secret_access_key={creds['AWS_SECRET_ACCESS_KEY']!r},"
        f" region_name='us-east-1', aws_client_parameters=AwsClientParameters(endpoint_url={creds['AWS_ENDPOINT_URL']!r}))"
        ".save('t2g-test-s3', overwrite=True)\n"
    )
    env = {**os.environ, **prefect_server.env()}
    subprocess.run([sys.executable, "-c", make_block], env=env, check=True, capture_output=True)
    no_aws = {k: None for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    run = run_t2g(
        [*small_args(until="collect"), "--store", "s3://t2g-block/run"],
        tmp_path,
        prefect_server.env() | no_aws | {"T2G_AWS_CREDENTIALS_BLOCK": "t2g-test-s3"},
    )
    assert run.returncode == 0, run.output
    assert run.stages["collect"]["uri"].startswith("s3://t2g-block/run/collect/")
    assert creds["AWS_SECRET_ACCESS_KEY"] not in run.output


def test_a_copy_of_the_store_gets_references_to_itself_from_prefect_cache_hits(tmp_path, prefect_server):
    # One Prefect API, two stores holding the same artifacts (a copy; a local and an S3
    # store): a cache hit must name the store the run was given, not the first run's.
    import shutil

    env = prefect_server.env()
    first_store, second_store = tmp_path / "a", tmp_path / "b"
    for _ in range(2):  # the second run's hits are what Prefect records under the cache keys
        first = run_t2g([*small_args(), "--store", f"file://{first_store}", "--orchestrate"], tmp_path, env)
        assert first.returncode == 0, first.output
    shutil.copytree(first_store, second_store)
    second = run_t2g([*small_args(), "--store", f"file://{second_store}", "--orchestrate"], tmp_path, env)
    assert second.returncode == 0, second.output
    assert second.stages and all(s["hit"] for s in second.stages.values()), second.output
    assert all(s["uri"].startswith(f"file://{second_store}/") for s in second.stages.values()), second.stages
