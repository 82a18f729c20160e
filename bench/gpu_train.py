"""The training side on a GPU: SFT throughput (t2g vs seed-style, bench/sft.py) and the
tiny recipe end to end, each stage through t2g.runner (no Prefect server: the figures
are the stages' own), so a GPU user sees the same table `make demo` prints on a CPU.

Driven by bench/gpu_train.sh; each mode adds its figures under `gpu_train` in
bench/results.json. Not in bench/__main__.BENCHMARKS: CI has no GPU.

    python -m bench.gpu_train sft [--steps 60]
    python -m bench.gpu_train recipe NAME --store DIR [--config F] [--set k=v ...] [--out DIR]

`recipe` runs collect → (teacher) → extract → filter → reason → sft → grpo → evaluate;
a second `recipe` on the same store with other `--set`s reruns only what they change
(a longer GRPO, say), as the cached pipeline would.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import pipeline
from bench.__main__ import RESULTS, load_results
from bench.lockfile import installed_against


def save(mode: str, figs: dict[str, Any]) -> None:
    import torch

    results = load_results(RESULTS)
    section = results.setdefault("gpu_train", {})
    section[mode] = figs
    if torch.cuda.is_available():
        section["device"] = torch.cuda.get_device_name(0)
    section["torch"] = torch.__version__
    section.update(installed_against())  # which tree: the CPU lock, or what differs
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)
    print(json.dumps({mode: figs}, indent=2), flush=True)


def run_recipe(config: str, store_uri: str, overrides: list[str], out: Path | None) -> dict[str, Any]:
    figs, refs, store = pipeline.run_recipe(config, store_uri, overrides)
    md = store.read_file("evaluate", refs["evaluate"].key, "report.md").decode()
    print(md, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(md)
        if "rewards.png" in (store.manifest("grpo", refs["grpo"].key).get("files") or {}):
            (out / "rewards.png").write_bytes(store.read_file("grpo", refs["grpo"].key, "rewards.png"))
    return figs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_train")
    sub = parser.add_subparsers(dest="mode", required=True)
    sft = sub.add_parser("sft", help="SFT throughput, t2g vs seed-style")
    sft.add_argument("--steps", type=int, default=60)
    rec = sub.add_parser("recipe", help="the recipe end to end through t2g.runner")
    rec.add_argument("name", help="key of these figures under gpu_train")
    rec.add_argument("--config", default="configs/tiny.yaml")
    rec.add_argument("--store", required=True, help="store directory")
    rec.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    rec.add_argument("--out", type=Path, help="copy report.md and rewards.png here")
    args = parser.parse_args(argv)
    if args.mode == "sft":
        from bench.sft import run

        save("sft", run(steps=args.steps))
    else:
        store_uri = f"file://{Path(args.store).resolve()}"
        save(args.name, run_recipe(args.config, store_uri, args.overrides, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
