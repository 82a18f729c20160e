"""Teacher faults at the flow level: `t2g run` labels documents through an
OpenAI-compatible teacher (tests/support/fake_openai.py) that answers 500, 429, drops the
connection, stalls past the timeout, returns text that is not JSON and refuses one
request with a 400. The run finishes; transient faults cost retries, not rows; the two
answers that can never succeed are kept with their error and dropped by filter with a
reason: every document is accounted for (RELIABILITY.md, "teacher faults")."""

from __future__ import annotations

import json

import pyarrow.compute as pc

from t2g.config import load_recipe
from t2g.sources import read_source
from t2g.store import Store
from tests.support.fake_openai import FakeOpenAI
from tests.support.flowrun import SMALL, TINY, run_t2g, small_args

API_KEY = "SENTINEL-teacher-5e1d"
TRANSIENT = ["500", "429", "drop", "slow", "500"]
TERMINAL = ["invalid", "400"]


def _gold_by_text() -> dict[str, str]:
    recipe = load_recipe(TINY, overrides=SMALL)
    return {row.text: row.gold for src in recipe.collect.sources for row in read_source(src) if row.text and row.gold}


def test_teacher_faults_mid_flow_lose_no_document(tmp_path, prefect_server):
    gold = _gold_by_text()

    def answer(key: str, body: dict) -> tuple[str, None]:
        # The teacher "knows" the toy world: it answers each document's gold graph.
        prompt = body["messages"][-1]["content"]
        text = prompt.split("Text: ", 1)[1]
        return gold.get(text, '{"entities": [], "relations": []}'), None

    with FakeOpenAI(answer=answer) as fake:  # "slow" stalls until the client's timeout hangs up
        # Toy-world prompts carry no [tag], so every request shares one key and the
        # schedule is consumed by the first attempts, whichever documents they are.
        fake.schedule["?"] = [*TRANSIENT, *TERMINAL]
        args = small_args(
            "extract.backend=openai",
            "extract.model=fake-teacher",
            f"extract.base_url={fake.base_url}",
            "extract.timeout_s=5",  # far above an immediate answer under load; a stall costs exactly this
            "extract.max_retries=6",
            "extract.backoff_s=0.01",
            "extract.max_in_flight=4",
            "extract.shard_size=64",
        )
        run = run_t2g(args, tmp_path, {**prefect_server.env(), "OPENAI_API_KEY": API_KEY})
    assert run.returncode == 0, run.output
    assert API_KEY not in run.output

    store = Store(f"file://{tmp_path}/.t2g/store")
    key = lambda stage: run.stages[stage]["uri"].rsplit("/", 1)[1]  # noqa: E731
    # The teacher labels the training splits only (extract.splits, tiny-gold.yaml's from tiny.yaml).
    collected = store.read("collect", key("collect")).column("split").to_pylist()
    docs = sum(split in ("seed", "pool") for split in collected)
    assert 0 < docs < len(collected)
    extracted = store.read("extract", key("extract"))
    assert extracted.num_rows == docs, "every document got a row from the teacher"
    errors = extracted.filter(pc.invert(pc.is_null(extracted.column("error"))))
    errors = [e for e in errors.column("error").to_pylist() if e]
    graphs_bad = sum(1 for g in extracted.column("graph").to_pylist() if g is None)
    assert sum(fake.attempts.values()) == docs + len(TRANSIENT), fake.outcomes
    assert len(errors) == len(TERMINAL) and graphs_bad == len(TERMINAL), errors

    summary = store.manifest("filter", key("filter"))["summary"]
    dropped = store.read("filter-dropped", key("filter"))
    assert summary["kept"] + dropped.num_rows == docs, summary
    reasons = summary["reasons"]
    assert reasons.get("extraction error", 0) == len(TERMINAL), reasons
    print(
        "teacher faults",
        json.dumps(
            {"documents": docs, "attempts": sum(fake.attempts.values()), "kept": summary["kept"], "reasons": reasons}
        ),
    )
