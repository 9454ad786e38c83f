#!/usr/bin/env bash
# Issue 23's prepared GPU run: the whole `qwen` profile (Qwen2.5-Coder-0.5B-Instruct) on one H100/H200, with a
# deadline of 12 minutes in all, installs included.
#   1. Environment. A venv over the machine's own CUDA torch where python3 has one (--system-site-packages),
#      else the PyPI wheel (the CUDA build on Linux x86_64); the project; vLLM in its own venv
#      (`make vllm-env`). If vLLM does not install (no network), that is one line, and the profile runs with
#      the hf sampler (Profile.with_sampler_available).
#   2. `t2 run full-paper --profile qwen` under what is left of the deadline. What finishes is recorded, and
#      a rerun resumes from there.
#   3. Under $OUT: run.log (the flow's output, with its stage table and the stage times), tables.md
#      (`t2 report --table 1, 2, 3, 10` as markdown), times.json (install / run / report seconds, the
#      run's exit code, peak GPU memory).
# The model comes from PyPI (t2core/models/qwen_coder.py). On a machine without network, point
# T2_QWEN_CODER_GGUF at a local copy of the GGUF.
#   bash bench/qwen_gpu.sh                               # on the GPU machine, from the repository root
#   bash bench/qwen_gpu.sh --profile tiny --cpu          # its check on a CPU: tiny profile, the project's .venv
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=qwen CPU=0 BUDGET_S=${T2_QWEN_GPU_BUDGET_S:-720}
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --cpu) CPU=1; shift ;;
    --budget-s) BUDGET_S="$2"; shift 2 ;;
    *) echo "qwen_gpu.sh: unknown argument $1 (use --profile P, --cpu, --budget-s S)" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$PWD/qwen-gpu-out}"
mkdir -p "$OUT"
export PREFECT_SERVER_ANALYTICS_ENABLED=false PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
export T2_HOME="${T2_HOME:-/tmp/t2-qwen-gpu}"
T0=$(date +%s)

if [ "$CPU" = 1 ]; then  # the check: no installs, everything on the CPU
  export T2_DEVICE=cpu
  VENV=.venv
  [ -x "$VENV/bin/t2" ] || { echo "qwen_gpu.sh --cpu: $VENV/bin/t2 is missing; run make setup first" >&2; exit 2; }
else
  VENV=.venv-gpu
  if [ ! -x "$VENV/bin/t2" ]; then
    if python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
      echo "using the machine's CUDA torch: $(python3 -c 'import torch; print(torch.__version__)')"
      python3 -m venv --system-site-packages "$VENV"
    else
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q torch
    fi
    "$VENV/bin/pip" install -q -e ".[dev]"
  fi
  "$VENV/bin/python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
  if [ ! -x .venv-vllm/bin/python ] && ! make -s vllm-env VENV="$VENV" >"$OUT/vllm-install.log" 2>&1; then
    echo "vLLM did not install (see vllm-install.log); the profile runs with the hf sampler"
  fi
  export T2_VLLM_PYTHON="$PWD/.venv-vllm/bin/python"
fi
T1=$(date +%s)

MEM_PID=""
if command -v nvidia-smi >/dev/null 2>&1 && [ "$CPU" = 0 ]; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 1000 >"$OUT/gpu_mem.csv" 2>/dev/null &
  MEM_PID=$!
fi
LEFT=$(( BUDGET_S - (T1 - T0) - 30 ))  # 30 s kept for the reports
[ "$LEFT" -gt 60 ] || { echo "qwen_gpu.sh: the installs left ${LEFT}s of the ${BUDGET_S}s budget" >&2; exit 1; }
set +e
timeout --signal=TERM --kill-after=15 "$LEFT" "$VENV/bin/t2" run full-paper --profile "$PROFILE" 2>&1 | tee "$OUT/run.log"
RC=${PIPESTATUS[0]}
set -e
T2=$(date +%s)
[ -n "$MEM_PID" ] && kill "$MEM_PID" 2>/dev/null || true

: >"$OUT/tables.md"
for t in 1 2 3 10; do
  { echo "## Table $t"; "$VENV/bin/t2" report --table "$t" --profile "$PROFILE" --format md 2>&1 || true; echo; } >>"$OUT/tables.md"
done
T3=$(date +%s)
PEAK=$( [ -s "$OUT/gpu_mem.csv" ] && sort -n "$OUT/gpu_mem.csv" | tail -1 || echo null)
cat >"$OUT/times.json" <<EOF
{"profile": "$PROFILE", "cpu": $CPU, "install_s": $((T1 - T0)), "run_s": $((T2 - T1)), "report_s": $((T3 - T2)),
 "total_s": $((T3 - T0)), "budget_s": $BUDGET_S, "run_exit": $RC, "peak_gpu_mem_mib": $PEAK}
EOF
cat "$OUT/times.json"
[ "$RC" = 0 ] || { echo "qwen_gpu.sh: the run ended with $RC (124: the deadline; rerun to resume)"; exit "$RC"; }
echo "qwen_gpu.sh: done in $((T3 - T0)) s; tables in $OUT/tables.md"
