"""A training stage under `accelerate launch`, the runner's side: the command it starts
and the environment the ranks get. Every rank runs t2g/rank.py.

    python -m accelerate.commands.launch --config_file configs/accelerate/zero3.yaml \\
        --num_processes 8 -m t2g.rank --store s3://bucket/run --stage sft --key <key> \\
        --config-json '{...}' --upstream-json '{"reasoned": {...}}'

The processes are accelerate's to start (torchrun, the DeepSpeed launcher), on one
machine or several: nothing here spawns ranks itself.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, get_args

from pydantic import BaseModel

import t2g
from t2g.config import Recipe
from t2g.stages import registered
from t2g.store import ArtifactRef, Store

TAIL_LINES = 40


class LaunchError(RuntimeError):
    """A launched stage that failed: the message names the command and ends with its stderr."""


def section_model(stage: str) -> type[BaseModel]:
    """The recipe section class a stage takes: the ranks rebuild its config from JSON."""
    annotation = Recipe.model_fields[registered(stage).section].annotation
    for candidate in (annotation, *get_args(annotation)):  # `TeacherConfig | None` too
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise TypeError(f"stage {stage}: recipe section {registered(stage).section} is not a model")


# --- the runner's side -----------------------------------------------------------------


def launch(stage: str, config: BaseModel, upstream: Mapping[str, ArtifactRef], store: Store, key: str) -> None:
    """Run the stage under `accelerate launch` as `config.launch` says; returns once every
    rank exited cleanly (the artifact is then in the store)."""
    run(accelerate_command(stage, config, upstream, store, key), launch_env(store), stage)


def accelerate_command(
    stage: str, config: BaseModel, upstream: Mapping[str, ArtifactRef], store: Store, key: str
) -> list[str]:
    settings = config.launch
    # `python -m` with this interpreter: the ranks run the venv the runner runs.
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if settings.accelerate_config:
        path = Path(settings.accelerate_config).expanduser()
        if not path.is_file():
            raise LaunchError(
                f"{registered(stage).section}.launch.accelerate_config: {path} does not exist "
                f"(a relative path starts at the working directory, {Path.cwd()})"
            )
        cmd += ["--config_file", str(path.resolve())]
    if settings.num_processes is not None:
        cmd += ["--num_processes", str(settings.num_processes)]
    cmd += list(settings.extra_args)
    cmd += [
        "-m", "t2g.rank", "--store", store.root, "--stage", stage, "--key", key,
        # The dump leaves `launch` out (t2g/config/train_sections.py): the ranks run the stage in place.
        "--config-json", json.dumps(config.model_dump(mode="json"), separators=(",", ":")),
        "--upstream-json", json.dumps({p: u.to_dict() for p, u in upstream.items()}, separators=(",", ":")),
    ]  # fmt: skip
    return cmd


def launch_env(store: Store) -> dict[str, str]:
    """This process's environment for the ranks, plus what they need to open the same
    store: the S3 settings it was opened with may come from a Prefect block rather than
    the environment. They travel in the environment, never on the (printed) command line."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # rank output arrives line by line, as it is printed
    # The ranks import the t2g this process runs, wherever it is installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(t2g.__file__).resolve().parents[1]), env.get("PYTHONPATH")) if p
    )
    settings = store.environment()  # empty for a local store
    if settings:
        env.pop("AWS_SESSION_TOKEN", None)  # the store's own, or none: never a stale one
        env.update(settings)
    return env


def run(cmd: list[str], env: dict[str, str], stage: str) -> None:
    """Run `cmd` with its output passed through line by line. A non-zero exit raises
    LaunchError naming the command, with the last lines of its stderr."""
    print(f"[t2g.launch] {stage}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    # A session of its own: stopping the runner (a cancelled task) stops every rank.
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout, None), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr, tail), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        code = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        for pump in pumps:
            pump.join(timeout=10)
    if code != 0:
        raise LaunchError(
            f"{stage}: accelerate launch exited with code {code}\ncommand: {shlex.join(cmd)}\n"
            f"last lines of its stderr:\n{''.join(tail).rstrip()}"
        )


def _pump(stream: IO[bytes], sink: IO[str], tail: deque[str] | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sink.write(line)
        sink.flush()
        if tail is not None:
            tail.append(line)
    stream.close()


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
