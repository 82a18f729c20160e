#!/usr/bin/env bash
# Teacher extraction on a GPU machine: vLLM offline, `vllm serve` + the openai backend, and
# a seed-style baseline (batches of 8, one after another), 500 toy-world texts each, with
# the tiny model. Prints valid-JSON rate and tokens/s; writes bench/results.json
# (gpu_teacher). Needs CUDA; installs the vllm extra itself. CI never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-500}"
PORT="${PORT:-8011}"
PY="${PYTHON:-python}"
WORK="$(mktemp -d)"
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$PY" -m pip install -q -e '.[vllm]'
MODEL="$WORK/tiny"
"$PY" -m bench.gpu_teacher build "$MODEL"

# One engine per process: each mode frees the GPU for the next.
"$PY" -m bench.gpu_teacher offline "$MODEL" --n "$N"
"$PY" -m bench.gpu_teacher baseline "$MODEL" --n "$N"

"$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name tiny \
  --port "$PORT" --gpu-memory-utilization 0.5 > "$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
  sleep 1
done
"$PY" -m bench.gpu_teacher server tiny --base-url "http://127.0.0.1:$PORT/v1" --n "$N"

"$PY" - <<'PY'
import json
r = json.load(open("bench/results.json"))["gpu_teacher"]
for mode in ("vllm_offline", "vllm_serve_openai", "seed_baseline_batches_of_8"):
    f = r.get(mode, {})
    print(f"{mode:28s} valid JSON {f.get('valid_json_rate')}  {f.get('tokens_per_s')} tokens/s  {f.get('seconds')} s")
PY
