"""One generation path: evaluate and `t2g extract` answer through t2g.llm's transformers
backend (t2g.inference) exactly as the retired t2g.inference.Generator answered.

tests/t2g/data/generation_parity.json holds what that Generator answered, greedily, on the
models built here (an untrained tiny model, the same with sharpened weights, one trained
for a few steps), recorded with `python -m tests.t2g.test_generation_parity` at the commit
before it was retired (ee96a8f, where this test called the Generator): free and schema-constrained answers, the thinking prompt, mixed
prompt lengths in batches, evaluate's report (F1 figures, comparisons, every completion)
and `extract`'s graphs. The tests assert the generation path of today gives the same
strings and figures. Greedy answers depend on the float kernels: the recording says
which torch, transformers, device and CPU kernels (AVX2, AVX512) made it, and a run under
others is skipped with that reason (re-record then, after checking the answers are still
right; `make test` runs AVX2's kernels on every host, see the Makefile).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from t2g.config import EvaluateConfig
from t2g.graph import json_schema
from t2g.prompts import messages
from t2g.stages.evaluate import evaluate
from t2g.training import BASE_FILE
from tests.support.trainkit import collect_table, small_tiny_model

RECORDED = Path(__file__).parent / "data" / "generation_parity.json"
ETYPES, RTYPES = ["person", "organisation"], ["works_for"]


@contextmanager
def one_thread():
    """Single-threaded kernels: the same sums in the same order on any machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def versions() -> dict[str, str]:
    import torch
    import transformers

    # The device too: the backend runs on CUDA where there is one, with other kernels; and
    # on a CPU, which vector kernels torch picked: the trained model's answers differ
    # between AVX2 and AVX-512 (`make test` runs AVX2 everywhere: ATEN_CPU_CAPABILITY).
    device = "cuda" if torch.cuda.is_available() else "cpu"
    kernels = torch.backends.cpu.get_cpu_capability() if device == "cpu" else device
    return {"torch": torch.__version__, "transformers": transformers.__version__, "device": device, "kernels": kernels}


def build_models(root: Path) -> dict[str, Path]:
    """untrained: the tests' small tiny model; sharp: its weights times 8 (an untrained
    model answers every prompt alike, sharper weights do not); trained: 300 steps of
    causal LM on three toy-world answers, so evaluation has F1 figures that are not all zero."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The recording's tokenizer: built before the recipe's system prompt became one token.
    untrained = small_tiny_model(root / "untrained", prompt_tokens=False)
    base = (untrained / BASE_FILE).read_text()
    out = {"untrained": untrained}
    with one_thread():
        model = AutoModelForCausalLM.from_pretrained(untrained)
        tokenizer = AutoTokenizer.from_pretrained(untrained)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(8.0)
        out["sharp"] = _save(model, tokenizer, root / "sharp", base)
        model = AutoModelForCausalLM.from_pretrained(untrained)
        _train(model, tokenizer, steps=300)
        out["trained"] = _save(model, tokenizer, root / "trained", base)
    return out


def _save(model: Any, tokenizer: Any, folder: Path, base: str) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / BASE_FILE).write_text(base)  # a tiny base: evaluate rebuilds it from the seed
    return folder


def _train(model: Any, tokenizer: Any, steps: int) -> None:
    import torch

    torch.manual_seed(0)
    # Learnt by heart: three of the documents evaluate_case scores (nothing is claimed of
    # how well the model generalises, only that it gets some answers right).
    rows = collect_table({"test": 3}).to_pylist()
    texts = [
        tokenizer.apply_chat_template(
            messages(r["text"], r["entity_types"], r["relation_types"]) + [{"role": "assistant", "content": r["gold"]}],
            tokenize=False,
        )
        for r in rows
    ]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = texts
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def chats_of(n: int, thinking: bool = False) -> tuple[list[list[dict]], list[dict]]:
    """`n` toy-world prompts of varied lengths (so batches pad) and their schemas."""
    rows = collect_table({"test": n}).to_pylist()
    rows[1]["text"] = rows[1]["text"][:20]  # a short one among the long
    chats = [messages(r["text"], r["entity_types"], r["relation_types"], thinking) for r in rows]
    schemas = [json_schema(r["entity_types"], r["relation_types"]) for r in rows]
    return chats, schemas


# (model, thinking prompt, constrained, max_new_tokens, batch_size)
GENERATE_CASES = {
    "sharp-free": ("sharp", False, False, 24, 3),
    "sharp-constrained": ("sharp", False, True, 40, 4),
    "sharp-thinking": ("sharp", True, False, 16, 7),
    "trained-free": ("trained", False, False, 128, 2),
    "trained-constrained": ("trained", False, True, 96, 5),
}


def generate_case(models: dict[str, Path], name: str) -> list[list[Any]]:
    """[text, finish_reason] of each answer of case `name`, through today's path."""
    from t2g.inference import LocalGenerator, greedy

    model, thinking, constrained, max_new, batch = GENERATE_CASES[name]
    chats, schemas = chats_of(7, thinking)
    answers = LocalGenerator(models[model], batch).generate(greedy(chats, max_new, schemas if constrained else None))
    return [[a.text, a.finish_reason] for a in answers]


def evaluate_case(models: dict[str, Path], constrained: bool) -> dict[str, Any]:
    """Evaluate's report (every figure) and completions: base (rebuilt untrained), sft (the
    trained model), grpo (the sharp one), on the test split and a benchmark file."""
    docs = collect_table({"seed": 2, "test": 6})
    cfg = EvaluateConfig(max_new_tokens=128, batch_size=4, constrained=constrained)
    result = evaluate(cfg, docs, models["trained"], models["sharp"])
    report = json.loads(result.files["report.json"])
    completions = {f"{r['dataset']}/{r['model']}/{r['id']}": r["completion"] for r in result.main.to_pylist()}
    return {"report": {k: report[k] for k in ("models", "comparisons", "benchmarks")}, "completions": completions}


def extract_case(models: dict[str, Path]) -> list[dict]:
    from t2g.inference import extract

    texts = [r["text"] for r in collect_table({"test": 5}).to_pylist()]
    return extract(texts, ETYPES, RTYPES, str(models["trained"]), max_new_tokens=128, batch_size=2)


def record(root: Path) -> dict[str, Any]:
    models = build_models(root)
    with one_thread():
        return {
            "versions": versions(),
            "generate": {name: generate_case(models, name) for name in GENERATE_CASES},
            "evaluate": {"free": evaluate_case(models, False), "constrained": evaluate_case(models, True)},
            "extract": extract_case(models),
        }


# --- the tests -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    data = json.loads(RECORDED.read_text())
    if data["versions"] != versions():
        pytest.skip(
            f"answers recorded under {data['versions']}, this is {versions()}: run it as `make test` does "
            "(ATEN_CPU_CAPABILITY=avx2) or re-record (module docstring)"
        )
    return data


def test_make_runs_the_kernels_the_recording_was_made_under():
    # Otherwise `make test` on an AVX-512 host would skip the comparisons instead of running them.
    kernels = json.loads(RECORDED.read_text())["versions"]["kernels"]
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert f"export ATEN_CPU_CAPABILITY ?= {kernels.lower()}\n" in makefile


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("parity"))


def test_the_recording_has_answers_worth_comparing(recorded):
    # Varied answers, stopped and cut ones, valid graphs and F1 above zero: identical
    # strings would prove little if every answer were the same.
    for name, answers in recorded["generate"].items():
        assert len({a[0] for a in answers}) > 1, name
    finishes = {a[1] for answers in recorded["generate"].values() for a in answers}
    assert finishes == {"stop", "length"}
    sft = recorded["evaluate"]["free"]["report"]["models"]["sft"]
    assert sft["valid_json_rate"] > 0 and sft["entities"]["micro"]["f1"] > 0, sft


@pytest.mark.parametrize("name", list(GENERATE_CASES))
def test_generate_gives_the_recorded_answers(recorded, models, name):
    with one_thread():
        assert generate_case(models, name) == recorded["generate"][name]


@pytest.mark.parametrize("constrained", [False, True], ids=["free", "constrained"])
def test_evaluate_gives_the_recorded_report_and_completions(recorded, models, constrained):
    with one_thread():
        got = evaluate_case(models, constrained)
    want = recorded["evaluate"]["constrained" if constrained else "free"]
    assert got["completions"] == want["completions"]
    assert got["report"] == want["report"]


def test_extract_gives_the_recorded_graphs(recorded, models):
    with one_thread():
        assert extract_case(models) == recorded["extract"]


if __name__ == "__main__":  # python -m tests.t2g.test_generation_parity: (re-)record
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = record(Path(tmp))
    RECORDED.parent.mkdir(exist_ok=True)
    RECORDED.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {RECORDED}", file=sys.stderr)
