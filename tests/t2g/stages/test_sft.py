"""The SFT stage: a few real trl steps on a tiny model; completion-only loss; a kill in
the middle of training resumes from the last checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from t2g.config import SftConfig
from t2g.stages.sft import examples_from, sft
from t2g.training import TrainingError, load_model, read_base, trained_to_think
from tests.support.faultkit import kill_at
from tests.support.trainkit import SMALL_TINY, reason_table, sft_config

REPO = Path(__file__).resolve().parents[3]


def test_sft_trains_a_tiny_student(tmp_path):
    result = sft(sft_config(tmp_path), reason_table(12))
    assert result.summary["steps"] == 3 and result.summary["resumed_from_step"] == 0
    names = set(result.main.column("name").to_pylist())
    assert {"loss", "train_loss"} <= names
    folder = result.model_dir
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))  # no pickles in the artifact
    assert read_base(folder)["model"] == "tiny"
    load_model(folder)  # loads like a hub checkpoint


def test_examples_are_prompt_completion_with_the_shared_prompt():
    ex = examples_from(reason_table(2))[0]
    assert [m["role"] for m in ex["prompt"]] == ["system", "user"]
    assert ex["completion"][0]["role"] == "assistant" and ex["completion"][0]["content"].startswith('{"entities"')


def test_bad_inputs_fail_before_training(tmp_path):
    table = reason_table(4)
    with pytest.raises(TrainingError, match="does not exist"):
        sft(sft_config(tmp_path, model=str(tmp_path / "nope")), table)
    with pytest.raises(TrainingError, match="no examples"):
        sft(sft_config(tmp_path), table.slice(0, 0))
    with pytest.raises(TrainingError, match="target"):
        sft(sft_config(tmp_path), table.drop_columns(["target"]))


def _run(work: str, steps: int) -> None:  # the subprocess that gets killed
    sft(sft_config(Path(work), max_steps=steps, save_steps=2, logging_steps=1), reason_table(12))


def test_kill_mid_sft_resumes_from_checkpoint(tmp_path):
    steps = 40
    outcome = kill_at(
        [sys.executable, "-c", f"from tests.t2g.stages.test_sft import _run; _run({str(tmp_path)!r}, {steps})"],
        REPO, lambda: bool(list(tmp_path.glob("sft/*/checkpoints/checkpoint-*/trainer_state.json"))), timeout=120,
    )  # fmt: skip
    assert outcome == "killed", f"the run ended before it could be killed: {outcome}"
    assert not list(tmp_path.glob("sft/*/final/config.json"))  # killed before the end

    result = sft(sft_config(tmp_path, max_steps=steps, save_steps=2, logging_steps=1), reason_table(12))
    assert result.summary["resumed_from_step"] > 0, result.summary
    assert result.summary["steps"] == steps


def test_a_warmed_up_tiny_base_travels_with_the_model(tmp_path):
    """Evaluation rebuilds the base of a tiny student: with a warm-up that is the warmed-up
    weights (carried in the model folder), not a fresh random init."""
    from safetensors.torch import load_file

    from t2g.training import BASE_WEIGHTS, rebuild_tiny

    warm = SMALL_TINY.model_copy(update={"pretrain_steps": 3})
    result = sft(sft_config(tmp_path, tiny=warm), reason_table(12))
    folder = result.model_dir
    assert (folder / BASE_WEIGHTS).is_file()
    base_model, _ = rebuild_tiny(folder, read_base(folder))
    carried = load_file(str(folder / BASE_WEIGHTS))
    assert all(torch.equal(base_model.state_dict()[k], v) for k, v in carried.items())
    built_base = load_file(str(next(tmp_path.glob("sft/*/base")) / "model.safetensors"))
    assert carried.keys() == built_base.keys() and all(torch.equal(carried[k], built_base[k]) for k in carried)


def test_work_folder_follows_the_code_so_a_code_change_never_resumes_stale_checkpoints(tmp_path, monkeypatch):
    import t2g.training
    from t2g.training import work_dir

    cfg, data = sft_config(tmp_path), reason_table(4)
    here = work_dir(cfg, "sft", "t2g.stages.sft", data)
    assert work_dir(cfg, "sft", "t2g.stages.sft", data) == here  # a rerun after a crash finds its checkpoints
    monkeypatch.setattr(t2g.training, "code_version", lambda *modules: "another tokenizer")
    assert work_dir(cfg, "sft", "t2g.stages.sft", data) != here


def test_a_student_continued_from_the_teacher_carries_the_teacher_as_its_base(tmp_path):
    from safetensors.torch import load_file

    from t2g.config import TeacherConfig
    from t2g.stages.teacher import teacher
    from t2g.training import load_tokenizer, rebuild_tiny
    from tests.support.trainkit import collect_table

    cfg = TeacherConfig(max_steps=2, batch_size=4, tiny=SMALL_TINY, logging_steps=1, work_dir=str(tmp_path / "teacher"))
    taught = teacher(cfg, collect_table({"seed": 6})).model_dir
    result = sft(sft_config(tmp_path, model="@teacher"), reason_table(8), taught)
    base = read_base(result.model_dir)
    assert base == {"model": "tiny", "tiny": read_base(taught)["tiny"], "from": "@teacher"}
    assert load_tokenizer(result.model_dir).get_vocab() == load_tokenizer(taught).get_vocab()
    teacher_weights = load_file(taught / "model.safetensors")
    student = load_model(result.model_dir).state_dict()
    assert any(not torch.equal(student[k], w) for k, w in teacher_weights.items())  # trained on from the teacher
    rebuilt = rebuild_tiny(result.model_dir, base)[0].state_dict()  # what evaluate scores as "base"
    assert all(torch.equal(rebuilt[k], w) for k, w in teacher_weights.items())


def test_the_teacher_as_base_needs_a_tiny_teacher(tmp_path):
    table = reason_table(4)
    with pytest.raises(TrainingError, match="got no teacher model: add a teacher section"):
        sft(sft_config(tmp_path, model="@teacher"), table)
    other = tmp_path / "other"
    other.mkdir()
    (other / "t2g_base.json").write_text('{"model": "Qwen/Qwen2.5-0.5B"}')
    with pytest.raises(TrainingError, match="is not a tiny teacher"):
        sft(sft_config(tmp_path, model="@teacher"), table, other)


def test_batches_are_padded_to_a_multiple_of_64_on_a_gpu_only(monkeypatch, tmp_path):
    import t2g.training as training

    monkeypatch.setattr(training, "has_cuda", lambda: False)
    assert training.sft_args(SftConfig(), tmp_path).pad_to_multiple_of is None  # a CPU only pays for padding
    monkeypatch.setattr(training, "has_cuda", lambda: True)
    assert training.pad_multiple(SftConfig()) == 64  # a GPU pays per new batch length (docs/log.md)
    assert training.pad_multiple(SftConfig(pad_to_multiple_of=8)) == 8
    assert training.pad_multiple(SftConfig(padding_free=True)) is None


def test_a_thinking_target_makes_a_thinking_student(tmp_path):
    table = reason_table(6)
    think = [f"t{i} names a person." for i in range(6)]
    table = table.set_column(table.schema.get_field_index("think"), "think", pa.array(think, pa.string()))
    cfg = SftConfig(max_steps=1, batch_size=2, tiny=SMALL_TINY, logging_steps=1, save_steps=1, work_dir=str(tmp_path))
    result = sft(cfg, table)
    assert result.summary["thinking"] is True and trained_to_think(result.model_dir)
    plain = sft(cfg.model_copy(update={"work_dir": str(tmp_path / "plain")}), reason_table(6))
    assert plain.summary["thinking"] is False and not trained_to_think(plain.model_dir)
