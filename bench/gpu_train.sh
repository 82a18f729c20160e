#!/usr/bin/env bash
# The training side on a GPU machine: SFT throughput (t2g vs seed-style), the tiny recipe
# end to end through t2g.runner, then the same recipe with a 3x longer GRPO (only GRPO and
# evaluate rerun: the rest is cached in the same store). Writes bench/results.json
# (gpu_train) and each run's report.md and rewards.png under $OUT_DIR. Each part has its
# own time limit, so one that overruns still leaves the others' figures. CI never runs it.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUT_DIR="${OUT_DIR:-bench/gpu_out}"
CONFIG="${CONFIG:-configs/tiny.yaml}"  # the H200 figures in docs/log.md: configs/tiny-gold.yaml
STORE="$(mktemp -d)/store"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

"$PY" -c "import torch, trl, datasets, xgrammar, t2g.runner; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'trl', trl.__version__)" || exit 1
timeout "${SFT_S:-90}" "$PY" -m bench.gpu_train sft --steps 60 || echo "sft throughput: failed or over ${SFT_S:-90} s"
timeout "${RECIPE_S:-300}" "$PY" -m bench.gpu_train recipe tiny --config "$CONFIG" --store "$STORE" --out "$OUT_DIR/tiny" \
  || { echo "tiny recipe: failed or over ${RECIPE_S:-300} s"; exit 1; }
# What is left of DEADLINE_S (the whole script's budget) goes to the longer GRPO.
LONG_S=$(( ${DEADLINE_S:-600} - SECONDS ))
if (( LONG_S < 60 )); then echo "longer GRPO: skipped, ${LONG_S} s left of DEADLINE_S"; exit 0; fi
timeout "$LONG_S" "$PY" -m bench.gpu_train recipe tiny_grpo_120_steps --config "$CONFIG" --store "$STORE" --out "$OUT_DIR/grpo120" \
  --set grpo.max_steps=120 --set grpo.save_steps=60 --set 'evaluate.models=[sft, grpo]' \
  || echo "longer GRPO: failed or over ${LONG_S} s"
