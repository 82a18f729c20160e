"""What changes when a training stage runs as one of several processes (`accelerate
launch`, t2g/launch.py): which process this is, and saving the trained model once.

Under plain data parallelism every process holds the whole model, so the main one saves
it. Under DeepSpeed or FSDP the weights are sharded: every process takes part in gathering
them, and the main one saves the whole. Either way the others wait until the folder is
complete, so no process leaves while the saved model is still being written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from t2g.training import save_model

# Global rank and world size as the launchers set them: torchrun and the DeepSpeed
# launcher (RANK, WORLD_SIZE), MPI (PMI_*, OMPI_COMM_WORLD_*).
_RANK = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_SIZE = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return default


def rank() -> int:
    """This process's global rank; 0 when not launched."""
    return _env_int(_RANK, 0)


def world_size() -> int:
    return _env_int(_SIZE, 1)


def is_main_process() -> bool:
    return rank() == 0


def save_final(trainer, model, tokenizer, out: Path, base: dict[str, Any], base_weights: Path | None = None) -> Path:
    """`save_model` for a trained model, correct under any number of processes."""
    accelerator = trainer.accelerator
    if accelerator.num_processes == 1:
        return save_model(model, tokenizer, out, base, base_weights=base_weights)
    from accelerate.utils import DistributedType

    state_dict = None
    if accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP):
        # A collective: every rank must call it; the main rank gets the whole weights
        # (ZeRO-3 needs zero3_save_16bit_model, as configs/accelerate/zero3.yaml sets).
        state_dict = accelerator.get_state_dict(trainer.model_wrapped)
    if accelerator.is_main_process:
        save_model(model, tokenizer, out, base, state_dict=state_dict, base_weights=base_weights)
    accelerator.wait_for_everyone()
    return out
