"""Keys follow content: what a recipe names outside the store (sources, benchmarks, model
folders, hub objects) is part of its stage's key, so a changed file reruns the stage and
an unchanged one is a hit; an unpinned hub object is never a hit, and says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel

from t2g import fingerprint, runner
from t2g.config import CollectConfig, EvaluateConfig, HFSource, SftConfig, TextSource
from t2g.stages import STAGES, Input, Stage
from t2g.store import ArtifactRef, Store
from tests.support.flowrun import run_t2g
from tests.support.prefect_server import QUIET

REPO = Path(__file__).resolve().parents[2]
DOC = ArtifactRef("file:///nowhere/collect/k0", "collect", "k0", 5)
SFT = ArtifactRef("file:///nowhere/sft/k1", "sft", "k1", 1)


def _jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def _recipe(tmp_path: Path, source: Path) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"extends: {REPO / 'configs' / 'tiny-gold.yaml'}\n"
        "name: stale\n"
        f"store: file://{tmp_path / 'store'}\n"
        f"collect: {{sources: [{{name: docs, kind: jsonl, path: {source}}}]}}\n"
    )
    return recipe


def test_documents_appended_to_a_source_rerun_collect(tmp_path, prefect_server):
    """The issue's reproduction: 4 documents appended to a 5-document source used to be
    "collect 5 rows hit"."""
    source = tmp_path / "docs.jsonl"
    _jsonl(source, [f"Document number {i} about Alice and Bob." for i in range(5)])
    recipe = _recipe(tmp_path, source)
    env = {**QUIET, **prefect_server.env(), fingerprint.NONCE_ENV: None}
    args = ["run", "--config", str(recipe), "--until", "collect"]

    first = run_t2g(args, tmp_path, env)
    assert first.returncode == 0, first.output
    assert first.stages["collect"] == {**first.stages["collect"], "rows": 5, "hit": False}
    again = run_t2g(args, tmp_path, env)
    assert again.stages["collect"]["hit"] and again.stages["collect"]["rows"] == 5, again.output

    with source.open("a") as fh:
        fh.writelines(json.dumps({"text": f"An appended document {i} about Carol."}) + "\n" for i in range(4))
    grown = run_t2g(args, tmp_path, env)
    assert grown.returncode == 0, grown.output
    assert grown.stages["collect"]["rows"] == 9 and not grown.stages["collect"]["hit"], grown.output
    assert run_t2g(args, tmp_path, env).stages["collect"] == {**grown.stages["collect"], "hit": True}


def test_an_edited_benchmark_changes_evaluates_key_and_a_missing_one_is_stable(tmp_path):
    bench = tmp_path / "bench.jsonl"
    cfg = EvaluateConfig(benchmarks=[str(bench)])
    upstream = {"docs": DOC, "sft_model": SFT}
    missing = runner.stage_key("evaluate", cfg, upstream)
    assert runner.stage_key("evaluate", cfg, upstream) == missing  # skipped by the stage: "missing"
    bench.write_text('{"text": "Alice met Bob.", "entities": [], "relations": []}\n')
    present = runner.stage_key("evaluate", cfg, upstream)
    assert present != missing and runner.stage_key("evaluate", cfg, upstream) == present
    bench.write_text('{"text": "Alice met Eve.", "entities": [], "relations": []}\n')  # same size, new bytes
    assert runner.stage_key("evaluate", cfg, upstream) not in (missing, present)


def test_a_local_model_folder_edited_changes_sfts_key(tmp_path):
    model = tmp_path / "base-model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 64}')
    (model / "model.safetensors").write_bytes(b"\0" * (fingerprint.SMALL + 10))  # weights: by size and mtime
    cfg = SftConfig(model=str(model))
    upstream = {"reasoned": DOC}
    before = runner.stage_key("sft", cfg, upstream)
    assert runner.stage_key("sft", cfg, upstream) == before
    (model / "config.json").write_text('{"hidden_size": 32}')
    edited = runner.stage_key("sft", cfg, upstream)
    assert edited != before
    (model / "model.safetensors").write_bytes(b"\1" * (fingerprint.SMALL + 11))
    assert runner.stage_key("sft", cfg, upstream) not in (before, edited)
    # "tiny" is built from the section: no fingerprint, the key of a section without one.
    assert STAGES["sft"].externals(SftConfig(model="tiny")) == {}


def test_a_folder_sources_fingerprint_changes_when_a_file_is_added(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("Alice works for Acme.")
    cfg = CollectConfig(sources=[TextSource(name="texts", kind="text", path=str(folder))])
    before = runner.stage_key("collect", cfg, {})
    assert fingerprint.collect_inputs(cfg) == {f"source texts: text {folder}": fingerprint.data_digest(folder)}
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("Bob works for Initech.")
    assert runner.stage_key("collect", cfg, {}) != before


def _hub(revision: str | None) -> CollectConfig:
    return CollectConfig(sources=[HFSource(name="wiki", kind="hf", dataset="org/wiki-sample", revision=revision)])


def _key_in_a_new_process(cfg: BaseModel) -> str:
    """`t2g run` is one process: each run has its own nonce."""
    code = (
        "import sys; from t2g.config import CollectConfig; from t2g.runner import stage_key; "
        "print(stage_key('collect', CollectConfig.model_validate_json(sys.argv[1]), {}))"
    )
    env = {k: v for k, v in os.environ.items() if k != fingerprint.NONCE_ENV}
    return subprocess.run([sys.executable, "-c", code, cfg.model_dump_json()], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def test_an_unpinned_hub_dataset_is_never_a_hit_and_a_pinned_one_is_stable():
    unpinned, pinned = _hub(None), _hub("3f2a9c1")
    assert fingerprint.collect_inputs(unpinned) == {"source wiki: hf dataset org/wiki-sample": None}
    assert runner.never_cached("collect", unpinned) == [
        "source wiki: hf dataset org/wiki-sample has no pinned revision: never cached"
    ]
    # One run computes the key many times (Prefect's cache, the runner, the merge): the same.
    assert runner.stage_key("collect", unpinned, {}) == runner.stage_key("collect", unpinned, {})
    assert _key_in_a_new_process(unpinned) != _key_in_a_new_process(unpinned)
    assert _key_in_a_new_process(pinned) == _key_in_a_new_process(pinned) == runner.stage_key("collect", pinned, {})
    assert runner.never_cached("collect", pinned) == []
    assert runner.stage_key("collect", _hub("3f2a9c1"), {}) != runner.stage_key("collect", _hub("77e0b4d"), {})


class HubSection(BaseModel):
    dataset: str
    revision: str | None = None


def hub_inputs(cfg: HubSection) -> dict[str, str | None]:
    return {f"hf dataset {cfg.dataset}": f"hub:{cfg.dataset}@{cfg.revision}" if cfg.revision else None}


def test_a_stage_with_an_unpinned_input_reruns_every_run_and_its_summary_says_why(tmp_path, monkeypatch):
    """Through the runner and a real store: the next run (a new nonce) never finds the
    artifact; a pinned input is a hit."""
    monkeypatch.setitem(
        STAGES, "hubwords",
        Stage("hubwords", "tests.support.extra_stage:word_counts", None, (Input("docs", "collect"),),
              external="tests.flows.test_sources_keys:hub_inputs"),
    )  # fmt: skip
    store = Store(f"file://{tmp_path}/store")
    docs = store.write("collect", "d0", pa.table({"id": ["a", "b"], "text": ["one two", "three"]}))

    def run(cfg: HubSection) -> runner.Outcome:
        monkeypatch.delenv(fingerprint.NONCE_ENV, raising=False)  # a new run
        return runner.execute("hubwords", cfg, {"docs": docs}, store)

    first, second = run(HubSection(dataset="org/x")), run(HubSection(dataset="org/x"))
    assert not first.hit and not second.hit and first.ref.key != second.ref.key
    assert second.summary["never_cached"] == ["hf dataset org/x has no pinned revision: never cached"]
    pinned = HubSection(dataset="org/x", revision="abc")
    assert not run(pinned).hit and run(pinned).hit
    assert "never_cached" not in run(pinned).summary


def test_nightly_regeneration_shares_one_store_and_indexes_each_date(tmp_path, monkeypatch, prefect_api):
    """Three nights over one store: the corpus grows before the second (collect and what
    follows rerun), not before the third (all hits, the second night's keys)."""
    import datetime

    import t2g.config.store_uri
    from flows.data import data_flow
    from t2g import toyworld

    docs = list(toyworld.iter_documents(60, seed=11))
    corpus = tmp_path / "world.jsonl"
    recipe = tmp_path / "regen.yaml"
    recipe.write_text(
        f"extends: {REPO / 'configs' / 'tiny-gold.yaml'}\nname: regen\n"
        f"collect: {{sources: [{{name: world, kind: annotated, path: {corpus}}}]}}\n"
    )
    store = tmp_path / "regen"
    nights = {}
    for day, n in ((1, 40), (2, 60), (3, 60)):
        corpus.write_text("".join(json.dumps(d) + "\n" for d in docs[:n]))
        night = datetime.datetime(2026, 3, day, 2, 0, tzinfo=datetime.UTC)
        monkeypatch.setattr(t2g.config.store_uri, "utc_now", lambda night=night: night)
        monkeypatch.setattr("flows.pipeline.utc_now", lambda night=night: night)
        data_flow(config=str(recipe), store=f"file://{store}", until="reason", index="{date}")
        nights[day] = json.loads((store / "_runs" / f"2026-03-0{day}.json").read_text())["stages"]

    assert list(nights[1]) == ["collect", "extract", "filter", "reason"]
    assert not any(s["hit"] for s in nights[2].values())  # the corpus grew: collect and all after it
    assert nights[2]["collect"]["rows"] > nights[1]["collect"]["rows"]
    assert all(s["hit"] for s in nights[3].values())  # unchanged: nothing relabelled
    assert {k: s["key"] for k, s in nights[3].items()} == {k: s["key"] for k, s in nights[2].items()}
    assert not (store / "2026-03-01").exists()  # one store, no dated copies
