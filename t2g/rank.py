"""One rank of a training stage launched by t2g/launch.py under `accelerate launch`.

Every rank loads the inputs from the store and runs the stage function, so the trainer
sees the whole process group and accelerate/trl split the work; only the main rank
(global rank 0) writes the artifact, through the runner's own write path (`run_here`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from t2g.distributed import is_main_process, rank, world_size
from t2g.launch import LaunchError, section_model
from t2g.runner import run_here, stage_key
from t2g.stages import registered
from t2g.store import ArtifactRef, Store


def _node(name: str) -> str:
    try:
        registered(name)
    except KeyError:
        raise argparse.ArgumentTypeError(f"{name!r} is no stage nor a later round's node of one") from None
    return name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m t2g.rank", description="one rank of a launched training stage")
    parser.add_argument("--store", required=True, help="the store's root URI")
    parser.add_argument("--stage", required=True, type=_node, help="the node: a stage, or a later round's (sft-2)")
    parser.add_argument("--key", required=True, help="the node's key (the runner's): the artifact is written under it")
    parser.add_argument("--config-json", required=True, help="the stage's recipe section")
    parser.add_argument("--upstream-json", default="{}", help="the upstream artifact references, by parameter")
    args = parser.parse_args(argv)

    config = section_model(args.stage).model_validate_json(args.config_json)
    upstream = {param: ArtifactRef.from_dict(u) for param, u in json.loads(args.upstream_json).items()}
    # The rank writes under the runner's key (the node's). Computing it here again is a
    # check, not a second source: a machine with other t2g code, or another file behind a
    # section's path, would otherwise train on something the key does not name.
    check = stage_key(args.stage, config, upstream)
    if check != args.key:
        raise LaunchError(
            f"rank {rank()}: stage key {check} is not the runner's {args.key}: this machine runs other "
            "t2g code than the runner (every node needs the same image)"
        )
    run_here(
        args.stage,
        config,
        upstream,
        Store(args.store),
        args.key,
        write=is_main_process(),
        note={"processes": world_size()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
