"""oneDNN's kernel caches against memory and time (issue 43): the same LoRA training steps under caps of the
caches side by side, each in a fresh process. Two caches keep compiled kernels per shape: oneDNN's own
(`ONEDNN_PRIMITIVE_CACHE_CAPACITY`) and ideep's, PyTorch's layer over oneDNN (`LRU_CACHE_CAPACITY`); both
hold 1,024 by default, and t2 caps both unless the user set them (`t2core.memory.bound_kernel_cache`).

Each step trains LoRA (r16 on q/v, the smol baseline's shape) by next-token prediction on micro-batches of
random tokens of varying length under bf16 autocast, as a LoRA-NTP stage does on reference solutions: a
new sequence length is a new shape, and oneDNN compiles and keeps a kernel per shape. Printed per cap: the
peak resident set above the floor (VmHWM, reset after the model loaded), what stays held after the steps
once freed memory is handed back (`release_freed`), the time, and the ratios to the first cap.

    python bench/kernel_cache.py [--caps 1024/1024,64/1024,64/64] [--steps 12] [--micro 2] [--max-len 384]

A cap is ONEDNN/LRU (one number: both the same); `t2` sets neither, leaving t2's own caps (set at run time by
`load_model`, which this also checks).

Without native bf16 (`t2 doctor`) the matmuls do not go through oneDNN's bf16 kernels and the caps differ
little; the numbers are for a CPU with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(model: str, steps: int, micro: int, max_len: int) -> dict:
    import torch

    from t2core.adapters import with_adapter
    from t2core.memory import peak_memory, release_freed, status_mb
    from t2core.models import load_model
    from t2core.training.ntp import NTPConfig

    loaded = load_model(model)
    for p in loaded.model.parameters():  # the weights' pages in memory before the floor is read
        float(p.sum())
    g = torch.Generator().manual_seed(0)
    vocab = loaded.model.config.vocab_size
    cfg = NTPConfig(task="mbpp", method="lora", steps=steps, batch_size=2 * micro, micro_batch_size=micro)
    release_freed()
    t0 = time.perf_counter()
    with peak_memory() as peak, with_adapter(loaded, cfg=cfg) as lm:
        pm = lm.model
        pm.train()
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            for _ in range(2):  # two micro-batches a step, each of its own length
                n = int(torch.randint(max_len // 4, max_len + 1, (1,), generator=g))
                x = torch.randint(0, vocab, (micro, n), generator=g)  # (micro, n)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = pm(input_ids=x, labels=x).loss
                loss.backward()
            opt.step()
        pm.eval()
    seconds = time.perf_counter() - t0
    release_freed()
    floor = peak["peak_floor_host_mb"]
    return {"above_floor_mb": peak["peak_host_mb"] - floor, "held_after_mb": status_mb("VmRSS") - floor,
            "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--caps", default="1024/1024,64/1024,64/64",
                    help="cache capacities to compare (oneDNN/ideep), the first the reference")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--micro", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=384)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.model, a.steps, a.micro, a.max_len)))
        return
    rows = []
    for cap in a.caps.split(","):
        onednn, _, lru = cap.strip().partition("/")
        env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
        if onednn != "t2":
            env.update(ONEDNN_PRIMITIVE_CACHE_CAPACITY=onednn, LRU_CACHE_CAPACITY=lru or onednn)
        out = subprocess.run([sys.executable, __file__, "--child", "--model", a.model, "--steps", str(a.steps),
                              "--micro", str(a.micro), "--max-len", str(a.max_len)],
                             env=env, capture_output=True, text=True, check=True)
        rows.append((cap.strip(), json.loads(out.stdout.strip().splitlines()[-1])))
    ref = rows[0][1]
    print(f"{a.steps} LoRA steps of 2 micro-batches of {a.micro} x <= {a.max_len} random tokens, bf16 autocast, "
          f"{a.model}")
    print(f"{'oneDNN/ideep':>12} {'peak above floor MB':>20} {'held after MB':>14} {'s':>7} {'peak ratio':>11} {'time ratio':>11}")
    for cap, r in rows:
        print(f"{cap:>12} {r['above_floor_mb']:20.0f} {r['held_after_mb']:14.0f} {r['seconds']:7.1f} "
              f"{r['above_floor_mb'] / ref['above_floor_mb']:11.2f} {r['seconds'] / ref['seconds']:11.2f}")


if __name__ == "__main__":
    main()
