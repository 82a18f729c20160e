"""The reason stage: only a closed, original, bounded thinking is kept; the target is
`<think>…</think>` then the graph; every rejected row is in `dropped` with its reason."""

from __future__ import annotations

import json

import pyarrow as pa

from t2g.config import ReasonConfig
from t2g.graph import parse_completion
from t2g.llm import clear_cache
from t2g.stages.reason import reason
from tests.support.fake_openai import FakeOpenAI

GRAPH = json.dumps({"entities": [{"id": 0, "text": "Ada", "type": "person"}], "relations": []})

# key -> (content, reasoning_content): what the reasoner answers for each example.
ANSWERS = {
    "ok": ("<think>Ada is a name, so a person.</think>\n" + GRAPH, None),
    "opened": ("Ada is a name: a person.\n</think>\nanything after is dropped", None),  # R1 template opened <think>
    "split": ("whatever the answer", "The server split this reasoning off."),
    "unclosed": ("<think>Ada is a person and I keep going", None),
    "quotes": ("<think>The answer is " + json.dumps(json.loads(GRAPH), indent=2) + "</think>", None),
    "long": ("<think>" + "very long " * 100 + "</think>", None),
    "empty": ("<think>  </think>" + GRAPH, None),
}


def _examples(keys: list[str]) -> pa.Table:
    return pa.table(
        {
            "id": keys,
            "text": [f"[{k}] Ada works here." for k in keys],
            "entity_types": [["person"]] * len(keys),
            "relation_types": [["works_for"]] * len(keys),
            "graph": [GRAPH] * len(keys),
        }
    )


def test_thinking_off_passes_the_graph_through():
    res = reason(ReasonConfig(thinking=False), _examples(["a", "b"]))
    assert res.main.column("target").to_pylist() == [GRAPH, GRAPH] and "disabled" in res.summary["note"]
    assert res.side["dropped"].num_rows == 0


def test_reasoner_answers_are_checked():
    keys = list(ANSWERS) + ["error"]
    with FakeOpenAI({"error": ["400"]}, answer=lambda key, body: ANSWERS[key]) as fake:
        cfg = ReasonConfig(
            thinking=True, backend="openai", model="r1", base_url=fake.base_url, max_think_chars=200, backoff_s=0.01
        )
        res = reason(cfg, _examples(keys))
    clear_cache()
    kept = {r["id"]: r for r in res.main.to_pylist()}
    dropped = {r["id"]: r["reason"] for r in res.side["dropped"].to_pylist()}
    assert set(kept) == {"ok", "opened", "split"}
    assert dropped == {
        "unclosed": "no closed think block",
        "quotes": "quotes the graph JSON",
        "long": "thinking too long",
        "empty": "empty thinking",
        "error": "generation error",
    }
    assert kept["opened"]["think"] == "Ada is a name: a person."
    assert kept["split"]["think"] == "The server split this reasoning off."
    for row in kept.values():
        parsed = parse_completion(row["target"])
        assert parsed.format_ok and parsed.graph is not None and parsed.think.strip() == row["think"]
        assert row["target"].endswith("\n" + GRAPH)
    assert res.summary["reasons"] == {reason: 1 for reason in dropped.values()}
    assert res.summary["rows_in"] == 8 and res.summary["rows_out"] == 3
    # The reasoner was shown the answer to explain, and no JSON schema.
    assert all("Answer: " in b["messages"][-1]["content"] and "response_format" not in b for b in fake.bodies)
