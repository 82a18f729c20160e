"""bench/gpu_real.py runs only on a GPU machine, never in CI (its CPU smoke:
`ALLOW_CPU=1 SMALL=1 bench/gpu_real.sh`, ~90 s); these keep its student the shape it
claims and its driver well-formed, in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import Qwen2ForCausalLM

from bench.gpu_real import parameters, student_config

DRIVER = Path(__file__).resolve().parents[2] / "bench" / "gpu_real.sh"


def test_student_has_qwen2_5_0_5b_shape():
    # With Qwen2.5-0.5B's own vocabulary the student counts exactly its parameters
    # (494,032,768, 357,898,112 outside the tied embeddings); built on the meta device: no memory.
    config = student_config(vocab_size=151936, pad_id=0, eos_id=2)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    assert parameters(model) == {"parameters": 494_032_768, "non_embedding_parameters": 357_898_112}
    theta = getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]
    assert (theta, config.rms_norm_eps, config.max_position_embeddings, config.tie_word_embeddings) == (
        1e6,
        1e-6,
        32768,
        True,
    )
    assert student_config(vocab_size=500, pad_id=0, eos_id=2, small=True).num_hidden_layers == 2


def test_driver_parses_and_refuses_a_machine_without_cuda():
    assert subprocess.run(["bash", "-n", str(DRIVER)]).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine would run the whole benchmark")
    # The interpreter running the tests (CI does not put .venv/bin on PATH).
    env = {**{k: v for k, v in os.environ.items() if k not in ("ALLOW_CPU", "SMALL")}, "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(DRIVER)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "no CUDA" in run.stdout, run.stdout + run.stderr
