"""Security promises (RELIABILITY.md): a planted result record never runs code, no model
loader trusts remote code unless the recipe says so, credentials never leak, and nothing
from a recipe or from data can make the store write outside its root."""

from __future__ import annotations

import ast
import json
import os
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.test_teacher_faults import _gold_by_text
from tests.support.fake_openai import FakeOpenAI
from tests.support.flowrun import REPO, run_t2g, small_args

# -- planted result records ------------------------------------------------------------


class _Payload:
    """Unpickling this creates `marker`: what an attacker's record would do, harmlessly."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pickle_record(marker: Path) -> bytes:
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import PickleSerializer

    record = ResultRecord(metadata=ResultRecordMetadata(serializer=PickleSerializer()), result=_Payload(marker))
    return record.serialize()


def _json_hook_record(
    decoder: str = "prefect.serializers.prefect_json_object_decoder", result: str = '{"a": 1}'
) -> bytes:
    from prefect.serializers import JSONSerializer

    metadata = {"serializer": {**JSONSerializer().model_dump(mode="json"), "object_decoder": decoder}}
    return json.dumps({"metadata": metadata, "result": result}).encode()


def test_the_planted_record_is_live_when_prefect_reads_it_unguarded(tmp_path):
    """Control: the bytes the flow test plants do run code if Prefect deserialises them."""
    from prefect._internal.result_records import ResultRecord

    marker = tmp_path / "pwned"
    ResultRecord.deserialize(_pickle_record(marker))
    assert marker.exists()


def test_only_plain_json_records_pass(tmp_path):
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import JSONSerializer

    from tasks.results import UnsafeResultRecord, check_record

    good = ResultRecord(
        metadata=ResultRecordMetadata(serializer=JSONSerializer()), result={"uri": "x", "rows": 1}
    ).serialize()
    assert check_record(good) == good
    marker = tmp_path / "pwned"
    bad = {
        "pickle": _pickle_record(marker),
        "raw pickle": b"\x80\x04K\x01.",
        "decoder hook": _json_hook_record("subprocess.run"),
        "class hook": _json_hook_record(result=json.dumps({"x": [{"__class__": "os.system", "data": "true"}]})),
        "exception hook": _json_hook_record(result=json.dumps({"__exc_type__": "SystemExit", "message": "1"})),
        "not a record": b'{"result": "1"}',
    }
    for what, content in bad.items():
        with pytest.raises(UnsafeResultRecord):
            check_record(content, what)
    assert not marker.exists()


def test_planted_pickle_record_is_refused_and_recomputed(tmp_path, prefect_server):
    results = tmp_path / "results"
    env = {**prefect_server.env(), "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(results)}
    args = small_args(until="collect")
    first = run_t2g(args, tmp_path, env)
    assert first.returncode == 0, first.output
    # The exact record Prefect reads for collect's cache key (tasks/stage_task.prefect_key:
    # `t2g-<stage>-<store key>-<store digest>`, offered once the store holds the artifact;
    # the key is the file name). A run through Prefect with the artifact in the store writes it.
    primed = run_t2g([*args, "--orchestrate"], tmp_path, env)
    assert primed.returncode == 0, primed.output
    key = first.stages["collect"]["uri"].rsplit("/", 1)[1]
    (record_path,) = results.glob(f"t2g-collect-{key}-*")
    marker = tmp_path / "pwned"
    record_path.write_bytes(_pickle_record(marker))

    # --orchestrate: through Prefect although the store holds everything (a rerun with
    # nothing to do never reads a Prefect record at all).
    second = run_t2g([*args, "--orchestrate"], tmp_path, env)
    assert second.returncode == 0, second.output
    assert not marker.exists(), "the planted pickle record was deserialised"
    assert f"refused result record {record_path.name}" in second.output and "serializer 'pickle'" in second.output, (
        second.output
    )
    # Recomputed, not served from Prefect's cache: the task body ran and found the
    # finished artifact in the store, and a clean JSON record replaced the planted one.
    assert "cache hit: reused" in second.output, second.output
    assert second.stages["collect"]["hit"]
    assert json.loads(record_path.read_bytes())["metadata"]["serializer"]["type"] == "json"
    # And the guard does not cost the cache: the clean record is served as a Prefect cache hit.
    third = run_t2g([*args, "--orchestrate"], tmp_path, env)
    assert third.returncode == 0 and "refused" not in third.output, third.output
    assert "Cached" in third.output and "cache hit: reused" not in third.output, third.output


# -- trust_remote_code -----------------------------------------------------------------

_LOADERS = {"from_pretrained", "LLM"}  # transformers Auto*/model classes, vllm.LLM
_MODEL_FIELD = ("model", "model_name", "model_name_or_path", "base_model")


def _loader_calls() -> list[tuple[str, int, str, ast.Call, ast.AST]]:
    """(file, line, loader, call, enclosing function or module) of every loader call."""
    calls = []
    for root in ("t2g", "tasks", "flows"):
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
            seen: set[int] = set()
            for scope in reversed(scopes):  # innermost functions first
                for node in ast.walk(scope):
                    if isinstance(node, ast.Call) and id(node) not in seen:
                        f = node.func
                        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                        if name in _LOADERS:
                            seen.add(id(node))
                            calls.append((str(path.relative_to(REPO)), node.lineno, name, node, scope))
    return calls


def _explicit(call: ast.Call, scope: ast.AST) -> bool:
    """trust_remote_code= in the call, or in the dict a `**kwargs` of it was built as
    (`kwargs = dict(..., trust_remote_code=x)` or `{"trust_remote_code": x}`) in the
    same function."""
    if any(k.arg == "trust_remote_code" for k in call.keywords):
        return True
    splats = {k.value.id for k in call.keywords if k.arg is None and isinstance(k.value, ast.Name)}
    for node in ast.walk(scope):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if not any(isinstance(t, ast.Name) and t.id in splats for t in targets) or node.value is None:
            continue
        v = node.value
        if isinstance(v, ast.Call) and any(k.arg == "trust_remote_code" for k in v.keywords):
            return True
        if isinstance(v, ast.Dict) and any(
            isinstance(k, ast.Constant) and k.value == "trust_remote_code" for k in v.keys
        ):
            return True
    return False


def test_every_model_loader_passes_trust_remote_code_explicitly():
    calls = _loader_calls()
    assert calls, "found no loader call: the scan is broken"
    missing = [f"{path}:{line} {name}(...)" for path, line, name, call, scope in calls if not _explicit(call, scope)]
    assert not missing, f"loader calls without an explicit trust_remote_code=: {missing}"
    literal_true = [
        f"{path}:{line}"
        for path, line, _, call, _scope in calls
        for k in call.keywords
        if k.arg == "trust_remote_code" and isinstance(k.value, ast.Constant) and k.value.value is True
    ]
    assert not literal_true, f"trust_remote_code hard-wired on: {literal_true}"


def test_every_recipe_section_naming_a_model_has_trust_remote_code_off_by_default():
    from pydantic import BaseModel

    import t2g.config as config

    sections = [c for c in vars(config).values() if isinstance(c, type) and issubclass(c, BaseModel)]
    named = []
    for cls in sections:
        for name, field in cls.model_fields.items():
            if name in _MODEL_FIELD or name.endswith("_model"):
                if str not in typing.get_args(field.annotation) and field.annotation is not str:
                    continue
                named.append(cls.__name__)
                assert "trust_remote_code" in cls.model_fields, (
                    f"{cls.__name__}.{name} names a model: add trust_remote_code"
                )
                assert cls.model_fields["trust_remote_code"].default is False, cls.__name__
    assert named, "found no section naming a model: the scan is broken"
    recipe = config.load_recipe(REPO / "configs" / "tiny.yaml")

    def walk(obj, where):
        if isinstance(obj, BaseModel):
            if "trust_remote_code" in type(obj).model_fields:
                assert obj.trust_remote_code is False, f"{where} turns trust_remote_code on in the default recipe"
            for k in type(obj).model_fields:
                walk(getattr(obj, k), f"{where}.{k}")

    walk(recipe, "tiny")


# -- credentials -----------------------------------------------------------------------

SECRET = "SENTINEL-aws-9f3c1e7d5b"
API_KEY = "SENTINEL-api-2b8e6a4c0d"
TEACHER_KEY, TEACHER_KEY_ENV = (
    "SENTINEL-teacher-7c4a19e2f6",
    "TEST_TEACHER_API_KEY",
)  # a model server key: NAME_API_KEY (t2g.config.check_api_key_env)

_DUMP_PREFECT = """
import json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter
with get_client(sync_client=True) as c:
    arts = [a.model_dump(mode="json") for a in c.read_artifacts()]
    logs = [l.message for l in c.read_logs(limit=200)]
    offset = 200
    while True:
        more = [l.message for l in c.read_logs(limit=200, offset=offset)]
        logs += more
        offset += 200
        if len(more) < 200:
            break
print(json.dumps({"artifacts": arts, "logs": logs}))
"""


def _bucket_text(seaweedfs, root: str) -> list[tuple[str, str]]:
    """Every object under the run's prefix, as text (Parquet decoded: its pages are
    compressed, so a raw byte search could miss a leaked value)."""
    import io

    import boto3
    import pyarrow.parquet as pq

    env = seaweedfs.env()
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    bucket, prefix = root[len("s3://") :].split("/", 1)
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            data = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if obj["Key"].endswith(".parquet"):
                text = json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str)
            else:
                text = data.decode("utf-8", "replace")
            out.append((obj["Key"], text + data.decode("latin-1")))
    return out


def test_credentials_appear_nowhere(tmp_path, seaweedfs, prefect_server):
    import subprocess
    import sys
    import uuid

    root = f"s3://t2g-test/secrets-{uuid.uuid4().hex[:8]}"
    env = {
        **prefect_server.env(), **seaweedfs.env(),
        "AWS_SECRET_ACCESS_KEY": SECRET, "OPENAI_API_KEY": API_KEY, TEACHER_KEY_ENV: TEACHER_KEY,
    }  # fmt: skip
    gold = _gold_by_text()
    # The teacher is real HTTP to tests/support/fake_openai.py, through the openai backend: the key
    # named by extract.api_key_env must reach it (so it was used) and nothing else.
    with FakeOpenAI(
        answer=lambda key, body: (
            gold.get(body["messages"][-1]["content"].split("Text: ", 1)[-1], '{"entities": [], "relations": []}'),
            None,
        )
    ) as teacher:
        teacher_args = [
            "extract.backend=openai", "extract.model=fake-teacher", f"extract.base_url={teacher.base_url}",
            f"extract.api_key_env={TEACHER_KEY_ENV}", "extract.backoff_s=0.01",
        ]  # fmt: skip
        ok = run_t2g([*small_args(*teacher_args), "--store", root], tmp_path, env)
    assert ok.returncode == 0, ok.output
    assert set(ok.stages) >= {"collect", "extract", "filter"}
    assert teacher.authorizations and set(teacher.authorizations) == {f"Bearer {TEACHER_KEY}"}, set(
        teacher.authorizations
    )
    assert ok.stages["extract"]["rows"] == len(teacher.bodies) > 0  # every extracted row came from the teacher

    objects = _bucket_text(seaweedfs, root)
    assert any(k.endswith("_manifest.json") for k, _ in objects) and any(k.endswith(".parquet") for k, _ in objects)
    # A failing run: storage down (nothing listens on the endpoint). Its error names the
    # store URI, never the key.
    down = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    failed = run_t2g([*small_args("retries.attempts=0", *teacher_args), "--store", root], tmp_path, down)
    assert failed.returncode != 0, failed.output
    assert root in failed.output, failed.output

    dump = subprocess.run(
        [sys.executable, "-c", _DUMP_PREFECT],
        env={**os.environ, **prefect_server.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stderr
    prefect_side = json.loads(dump.stdout)
    assert any((a.get("key") or "").startswith("t2g-") for a in prefect_side["artifacts"])

    for sentinel in (SECRET, API_KEY, TEACHER_KEY):
        assert sentinel not in ok.output, "a log line of the run"
        assert sentinel not in failed.output, "a log line or error of the failing run"
        assert not [k for k, text in objects if sentinel in text], "an artifact or manifest"
        assert sentinel not in json.dumps(prefect_side["artifacts"]), "a Prefect artifact"
        assert sentinel not in json.dumps(prefect_side["logs"]), "a log line in the Prefect API"


# -- store keys ------------------------------------------------------------------------

_tricky = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        ["..", ".", "../..", "/etc", "a/../../b", "%2e%2e", "s3://x/y", "file:///tmp", "\\..\\x", "~", "a\x00b", "ａ"]
    ),
    st.lists(st.sampled_from(["..", ".", "a", "/", "%2f", "\\", ":", "s3:", "~"]), max_size=6).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stage=_tricky, key=_tricky, name=_tricky)
def test_store_names_cannot_escape_the_root(tmp_path, stage, key, name):
    from t2g.store import Store

    root = tmp_path / "store"
    store = Store(f"file://{root}")
    try:
        rel = store._dir(stage, key)
    except ValueError:
        return
    path = (root / rel).resolve()
    assert path.is_relative_to(root.resolve()) and path != root.resolve(), (stage, key)
    assert len(rel.split("/")) == 2 and ".." not in rel.split("/")
    try:
        from t2g.store import check_file_name

        fname = check_file_name(name)
    except ValueError:
        return
    assert (path / fname).resolve().parent == path, name


@settings(max_examples=300, deadline=None)
@given(prefix=_tricky, stage=_tricky)
def test_s3_prefixes_cannot_climb(prefix, stage):
    from t2g.store import Store

    try:
        store = Store(f"s3://bucket/{prefix}", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
        uri = store.uri(stage, "k")
    except ValueError:
        return
    key = uri[len("s3://bucket/") :]
    assert ".." not in key.split("/") and "." not in key.split("/")[:-2], uri
    assert key.endswith(f"/{stage}/k") or key == f"{stage}/k", uri
