#!/usr/bin/env bash
# A real-size student on a GPU machine (bench/gpu_real.py): Qwen2.5-0.5B's architecture with
# random weights and the tiny tokenizer, nothing downloaded. Builds it, then measures SFT
# examples/s (t2g vs seed-style), GRPO seconds per step, and teacher tokens/s (t2g's
# transformers backend vs seed-style batches of 8), each part in its own process under its
# own time limit, so one that overruns still leaves the others' figures (written to
# bench/results.json under gpu_real after each part). DEADLINE_S bounds the whole script.
#
#   bench/gpu_real.sh                        # on the GPU machine, ~8 minutes at most
#   ALLOW_CPU=1 SMALL=1 bench/gpu_real.sh    # CPU smoke: a 2-layer model, results in a temp file
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
DEADLINE_S="${DEADLINE_S:-470}"
SMALL_FLAG=""
if [[ "${SMALL:-0}" == 1 ]]; then
  SMALL_FLAG="--small"
  export T2G_BENCH_RESULTS="${T2G_BENCH_RESULTS:-$WORK/results.json}"  # smoke figures never land in bench/results.json
fi
MODEL="$WORK/student"

"$PY" -c "
import torch, transformers, trl
print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__,
      'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')
raise SystemExit(0 if torch.cuda.is_available() else 3)"
rc=$?
if (( rc == 3 )) && [[ "${ALLOW_CPU:-0}" != 1 ]]; then echo "no CUDA: set ALLOW_CPU=1 to run on the CPU anyway"; exit 1; fi
if (( rc != 0 && rc != 3 )); then exit 1; fi

# part NAME LIMIT_S: run one part under LIMIT_S, cut to what is left of DEADLINE_S.
part() {
  local name="$1" limit="$2" left=$(( DEADLINE_S - SECONDS ))
  (( left < limit )) && limit=$left
  if (( limit < 30 )); then echo "== $name: skipped, ${left} s left of DEADLINE_S"; return 1; fi
  echo "== $name (at most $limit s, at ${SECONDS} s)"
  timeout -k 10 "$limit" "$PY" -m bench.gpu_real "$name" "$MODEL" $SMALL_FLAG || { echo "== $name: failed or over $limit s"; return 1; }
}

part build "${BUILD_S:-60}" || exit 1
part sft "${SFT_S:-150}"
part grpo "${GRPO_S:-150}"
part teacher "${TEACHER_S:-120}"

# The figures that matter, last, where a log tail shows them.
"$PY" - <<'PY'
import json, os
from pathlib import Path
path = Path(os.environ.get("T2G_BENCH_RESULTS") or "bench/results.json")
r = json.loads(path.read_text()).get("gpu_real", {})
m, s, g, t = (r.get(k, {}) for k in ("model", "sft", "grpo", "teacher"))
print(f"== gpu_real on {r.get('device')} (torch {r.get('torch')}, transformers {r.get('transformers')}, trl {r.get('trl')}); results in {path}")
print(f"model   {m.get('shape')} {m.get('parameters')} params ({m.get('non_embedding_parameters')} non-embedding), vocab {m.get('vocab_size')}, {m.get('dtype')}")
for side in ("t2g", "seed_style"):
    f = s.get(side, {})
    print(f"sft     {side:18s} {f.get('examples_per_s')} examples/s, steady {f.get('steady_examples_per_s')} ({f.get('param_dtype')})")
print(f"sft     speedup {s.get('speedup')}, steady {s.get('steady_speedup')}")
print(f"grpo    {g.get('seconds_per_step')} s/step over {g.get('timed_steps')} steps, generation {g.get('generation_tokens_per_s')} tokens/s "
      f"({g.get('generation_share')} of the step), mean completion {g.get('mean_completion_tokens')} tokens, clipped {g.get('trl_clipped_ratio')}")
for side in ("t2g", "seed_style", "t2g_unconstrained"):
    f = t.get(side, {})
    print(f"teacher {side:18s} {f.get('tokens_per_s')} tokens/s, {f.get('docs_per_s')} docs/s, valid JSON {f.get('valid_json_rate')}, "
          f"mean {f.get('mean_completion_tokens')} tokens {f.get('error', '')}")
print(f"teacher t2g / seed-style: tokens/s {t.get('tokens_per_s_ratio')}, docs/s {t.get('docs_per_s_ratio')}")
PY
echo "== done in ${SECONDS} s"
