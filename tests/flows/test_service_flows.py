"""The train-only and evaluate-only deployments' flows (flows/service.py), run end to end
in-process against the real Prefect server: a cut-down tiny-gold run up to `reason`, then
`t2g-train-only` from that reason artifact (sft → grpo → evaluate), then
`t2g-evaluate-only` of the sft model on a benchmark file. Each also refuses an artifact of
the wrong kind, naming it, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.service import evaluate_model, train_from_data
from t2g import toyworld
from t2g.store import Store
from tests.flows.test_pipeline_tiny import CUT
from tests.support.flowrun import TINY, run_t2g


def _key(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def _folders(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.glob("*/*") if p.is_dir()}


@pytest.fixture
def data_run(tmp_path, prefect_server):
    """A finished tiny-gold run up to reason: (store URI, store folder, its stage refs)."""
    args = ["run", "--config", str(TINY), "--until", "reason"]
    for item in CUT:
        args += ["--set", item]
    run = run_t2g(args, tmp_path, prefect_server.env())
    assert run.returncode == 0, run.output[-4000:]
    assert {"collect", "extract", "filter", "reason"} <= set(run.stages) and "sft" not in run.stages, run.stages
    folder = tmp_path / ".t2g" / "store"
    return f"file://{folder}", folder, run.stages


def test_train_only_then_evaluate_only_run_end_to_end(data_run, tmp_path, prefect_api):
    uri, folder, stages = data_run
    store = Store(uri)
    reason = stages["reason"]["uri"]

    trained = train_from_data(str(TINY), data=reason, store=uri, overrides=CUT)
    assert {"sft", "grpo", "evaluate"} <= set(trained), trained
    sft, evaluation = trained["sft"], trained["evaluate"]
    assert store.manifest("sft", _key(sft["uri"]))["kind"] == "model"
    # Lineage: the model was trained on exactly the given data artifact.
    upstream = [u["uri"] for u in store.manifest("sft", _key(sft["uri"]))["upstream"]]
    assert reason in upstream, upstream
    report = json.loads(store.read_file("evaluate", _key(evaluation["uri"]), "report.json"))
    assert set(report["models"]) == {"base", "sft", "grpo"}, report["models"].keys()

    bench = tmp_path / "toy-bench.jsonl"
    assert toyworld.write_jsonl(bench, 4, seed=3, split="test") == 4
    scored = evaluate_model(str(TINY), model=sft["uri"], benchmark=str(bench), store=uri, overrides=CUT)
    report = json.loads(store.read_file("evaluate", _key(scored["uri"]), "report.json"))
    assert set(report["models"]) == {"base", "sft"}, "an sft model is scored against its base only, no grpo"
    assert set(report["benchmarks"]) == {"toy-bench"} and set(report["benchmarks"]["toy-bench"]) == {"base", "sft"}
    assert scored["uri"] != evaluation["uri"]  # its own evaluation, not the train-only one reused

    # Wrong kinds fail at once, naming what was given, and run nothing.
    before = _folders(folder)
    with pytest.raises(ValueError, match=r"data must be a reason artifact.*got a sft artifact"):
        train_from_data(str(TINY), data=sft["uri"], store=uri, overrides=CUT)
    with pytest.raises(ValueError, match=r"model must be an sft or grpo artifact, got a reason artifact"):
        evaluate_model(str(TINY), model=reason, benchmark=str(bench), store=uri, overrides=CUT)
    with pytest.raises(FileNotFoundError, match="absent.jsonl does not exist"):
        evaluate_model(str(TINY), model=sft["uri"], benchmark=str(tmp_path / "absent.jsonl"), store=uri, overrides=CUT)
    assert _folders(folder) == before
