#!/usr/bin/env bash
# The GPU check of issue 22, for a lent H100/H200 (about 8 minutes): CUDA torch and vLLM installed, then
#   1. one REINFORCE step of the smol profile's SVF expert, on the GPU and on the CPU: seconds and the ratio;
#   2. 32 ARC-Easy cloze items through the hf sampler on the GPU (bf16) and the CPU (fp32), and through the
#      vllm sampler on the GPU: accuracies, the share of identical answers, seconds, ratios;
#   3. a two-worker Dask run of full-paper tiny with --gpus-per-worker (one worker per GPU, at most 2);
#   4. peak GPU memory;
#   5. three REINFORCE steps on GSM8K (generated answers, the real reward) with the paper profile's memory
#      settings (bf16 U/V, gradient checkpointing; issue 35), its peak GPU memory beside `t2 plan`'s estimate.
# Exits non-zero when the GPU answers differ from the CPU's beyond bf16 tolerance (more than 1 item in 8 of
# the hf answers, or an accuracy more than 0.1 apart) or any step fails.
#   bash bench/gpu_check.sh            # from the repository root on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_SERVER_ANALYTICS_ENABLED=false T2_HOME="${T2_HOME:-/tmp/t2-gpu-check}" PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q torch                         # the PyPI wheel is the CUDA build on Linux x86_64
.venv-gpu/bin/pip install -q -e ".[dev]"
[ -x .venv-vllm/bin/python ] || make vllm-env VENV=.venv-gpu  # nvidia-smi present: installs vllm (GPU build)
export T2_VLLM_PYTHON="$PWD/.venv-vllm/bin/python"
.venv-gpu/bin/python - <<'PY'
import json, subprocess, sys, time
import torch
from catalog import Catalog
from catalog.execute import execute
from t2core.evaluate import EvalConfig
from t2core.models import load_model
from t2core.profiles import get_profile
from t2core.sampling import GenerationConfig
from t2ops import evaluation, svd, training

assert torch.cuda.is_available(), "no CUDA device"
prof, out, bad = get_profile("smol"), {}, []

def timed(fn):
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    t0 = time.perf_counter(); r = fn(); torch.cuda.synchronize(); return r, time.perf_counter() - t0

for device in ("cuda", "cpu"):
    import os
    os.environ["T2_DEVICE"] = "auto" if device == "cuda" else "cpu"
    m = load_model("smollm2-135m")
    cat = Catalog(f"/tmp/t2-gpu-check-{device}.duckdb")
    execute(svd.OP, svd.SvdRequest("mlp"), m, cat)
    dtype = "bfloat16" if device == "cuda" else "float32"
    rl = prof.rl_config("arc_easy_cloze", steps=1, dtype=dtype, valid_limit=8, train_limit=16)
    _, out[f"train_step_{device}_s"] = timed(lambda: execute(training.OP, training.TrainRequest(rl), m, cat, force=True))
    ev = EvalConfig("arc_easy_cloze", limit=32, generation=GenerationConfig(dtype=dtype, batch_size=16))
    res, out[f"eval_hf_{device}_s"] = timed(lambda: execute(evaluation.OP, evaluation.EvalRequest(ev), m, cat, force=True))
    out[f"eval_hf_{device}"] = [s.parsed for s in res.result.samples]
    out[f"acc_hf_{device}"] = res.accuracy
    if device == "cuda":
        res, out["eval_vllm_cuda_s"] = timed(lambda: execute(evaluation.OP, evaluation.EvalRequest(ev, None, "vllm"), m,
                                                             cat, force=True))
        out["acc_vllm_cuda"] = res.accuracy
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    del m
# 5. the paper profile's memory knobs on a GPU: the checkpointed recomputation and the in-place W' swap, which
# the meta-device tests cannot run (tests/test_placement.py), and the plan's count beside the measured peak
from dataclasses import replace
from t2core.svf.placement import set_factor_dtype
from t2core.plan.shape import model_shape
from t2core.plan.work import PlanContext, rl_training
from t2core.plan import footprint as fp
os.environ["T2_DEVICE"] = "auto"
m = load_model("smollm2-135m")
set_factor_dtype(m, "bfloat16")
cat = Catalog("/tmp/t2-gpu-check-knobs.duckdb")
execute(svd.OP, svd.SvdRequest("mlp"), m, cat)
rl = replace(prof.rl_config("gsm8k", steps=3, dtype="bfloat16", valid_limit=8, train_limit=64), grad_checkpointing=True)
torch.cuda.reset_peak_memory_stats()
_, out["gsm8k_3_steps_s"] = timed(lambda: execute(training.OP, training.TrainRequest(rl), m, cat, force=True))
shape = model_shape("smollm2-135m")
work = rl_training(rl, PlanContext(shape, None, "bfloat16", True, gpu=True))
planned = fp.weights(shape) + fp.factors(shape, "mlp", "bfloat16") + fp.with_slack(work.footprint).total
out["gsm8k_peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
out["gsm8k_plan_mb"] = planned / 2**20
print(f"GSM8K REINFORCE, bf16 U/V, checkpointed: peak {out['gsm8k_peak_gpu_mb']:.0f} MB, plan {out['gsm8k_plan_mb']:.0f} MB "
      f"(plan/measured {out['gsm8k_plan_mb'] / out['gsm8k_peak_gpu_mb']:.2f})")
same = sum(a == b for a, b in zip(out["eval_hf_cuda"], out["eval_hf_cpu"])) / len(out["eval_hf_cpu"])
print(json.dumps({k: v for k, v in out.items() if not k.startswith("eval_hf_") or k.endswith("_s")}, indent=1))
print(f"GPU/CPU time: train step {out['train_step_cuda_s'] / out['train_step_cpu_s']:.3f}x, "
      f"eval hf {out['eval_hf_cuda_s'] / out['eval_hf_cpu_s']:.3f}x, vllm/hf on the GPU "
      f"{out['eval_vllm_cuda_s'] / out['eval_hf_cuda_s']:.3f}x; same answers GPU bf16 vs CPU fp32: {same:.3f}")
if same < 7 / 8 or abs(out["acc_hf_cuda"] - out["acc_hf_cpu"]) > 0.1 or abs(out["acc_vllm_cuda"] - out["acc_hf_cuda"]) > 0.1:
    sys.exit("GPU results differ from the CPU's beyond bf16 tolerance")
PY
n=$(.venv-gpu/bin/python -c "import torch; print(min(2, torch.cuda.device_count()))")
.venv-gpu/bin/t2 run full-paper --profile tiny --runner dask --gpus-per-worker 1 --workers "$n" | tail -5
echo "gpu check: passed"
