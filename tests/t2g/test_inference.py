"""`t2g extract` and t2g.inference.extract: schema-constrained graphs from a local model,
generated through t2g.llm's transformers backend (t2g.inference.LocalGenerator)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from t2g.graph import json_schema, parse_completion
from t2g.inference import LocalGenerator, extract, greedy
from t2g.prompts import messages
from t2g.training import TrainingError

ETYPES, RTYPES = ["person", "organisation"], ["works_for"]


def test_constrained_output_is_a_valid_graph_of_the_requested_types(model):
    gen = LocalGenerator(model)
    texts = ["Marin works for Zentek.", "Zentek hired Talie."]
    chats = [messages(t, ETYPES, RTYPES) for t in texts]
    answers = gen.generate(greedy(chats, 48, [json_schema(ETYPES, RTYPES)] * 2))
    for ans in answers:
        # An untrained model babbles inside a string until the budget runs out, but the
        # schema still holds it to the graph's shape: a stopped answer is a valid graph,
        # a cut one a prefix of one.
        parsed = parse_completion(ans.text)
        if ans.finish_reason == "stop":
            assert parsed.graph is not None, ans
        else:
            assert ans.text.startswith('{"entities"'), ans
            assert parsed.error.startswith("unterminated"), parsed
    graphs = extract(texts, ETYPES, RTYPES, gen, max_new_tokens=48)
    for g in graphs:
        assert all(e["type"] in ETYPES for e in g["entities"])
        assert all(r["type"] in RTYPES for r in g["relations"])


def test_missing_model_fails_clearly(tmp_path):
    with pytest.raises(TrainingError, match="does not exist"):
        extract(["x"], ETYPES, RTYPES, str(tmp_path / "none"))


def test_cli_prints_interchange_jsonl(model, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Marin works for Zentek."}) + "\n")
    t2g = str(Path(sys.executable).with_name("t2g"))
    proc = subprocess.run([t2g, "extract", "--model", str(model), "--entity-types", "person,organisation",
                           "--relation-types", "works_for", "--input", str(src), "--max-new-tokens", "32"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["id"] == "a" and line["entity_types"] == ETYPES and "entities" in line and "relations" in line
    bad = subprocess.run(
        [t2g, "extract", "--model", str(model), "--entity-types", "person"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "give a TEXT" in bad.stderr


def test_answers_come_back_in_the_order_asked_whatever_the_batching(model):
    # Generate sorts prompts by length to batch similar ones together; each answer must
    # still land at its own chat's index.
    gen = LocalGenerator(model)
    with torch.no_grad():  # an untrained model answers every prompt alike; sharper weights do not
        for p in gen.backend().lm.parameters():
            p.mul_(8.0)
    texts = [
        "Marin works for Zentek, which Talie founded in the north.",
        "Zentek.",
        "Talie hired Marin at Zentek.",
        "Bo.",
    ]
    chats = [messages(t, ETYPES, RTYPES) for t in texts]
    gen.backend().batch_size = 1
    alone = [gen.generate(greedy([c], 12))[0].text for c in chats]
    assert len(set(alone)) > 1, "the answers must differ for the order to be tested"
    gen.backend().batch_size = 2
    together = [a.text for a in gen.generate(greedy(chats, 12))]
    assert together == alone


def test_a_model_given_its_content_digest_is_named_by_its_bytes(tmp_path):
    # A tiny base is rebuilt into a new temporary folder on every evaluation: its weights
    # (over 1 MiB in the demo) would be named by their file times and never be found in
    # the cache again; named by their bytes they are, and other bytes are another model.
    import os
    import shutil

    from t2g.fingerprint import data_digest
    from t2g.inference import LocalModel, model_identity

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.mkdir()
    (a / "config.json").write_text("{}")
    (a / "model.safetensors").write_bytes(b"\0" * (2 << 20))
    shutil.copytree(a, b)
    os.utime(b / "model.safetensors", ns=(1, 1))
    shutil.copytree(a, c)
    (c / "model.safetensors").write_bytes(b"\1" * (2 << 20))
    named = {p: model_identity(LocalModel(str(p), content=data_digest(p))) for p in (a, b, c)}
    assert named[a] == named[b] != named[c]
    assert model_identity(LocalModel(str(a))) != model_identity(
        LocalModel(str(b))
    )  # file times: why the bytes are needed
