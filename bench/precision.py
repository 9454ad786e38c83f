"""Benchmark: fp32 against bf16 autocast on this CPU, side by side, and what `dtype="auto"` picks here.

Three workloads, each timed in fp32 and under bf16 autocast (best of --repeats after a warm-up):
- one `nn.Linear` 576 -> 1536 on 256 rows (SmolLM2's MLP shape; the probe of t2core/precision.py is
  this at 128 rows);
- a SmolLM2-135M forward, batch 8 x 128 tokens (evaluation, choice scoring);
- a SmolLM2-135M forward + backward, batch 4 x 128 (training).
The last column is bf16 time / fp32 time: below 1, bf16 is faster here. To see an AVX2-only CPU on an
AVX-512 one, cap both kernel libraries: `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`.

    python bench/precision.py [--model smollm2-135m] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    from t2core.models import load_model
    from t2core.precision import auto_choice

    def timed(fn):
        def run(bf16: bool):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                fn()
        return best(lambda: run(False), args.repeats), best(lambda: run(True), args.repeats)

    lin, x = torch.nn.Linear(576, 1536), torch.randn(256, 576)
    model = load_model(args.model).model
    ids, ids_t = torch.randint(0, 40000, (8, 128)), torch.randint(0, 40000, (4, 128))

    def fwd():
        with torch.no_grad():
            model(ids, logits_to_keep=1)

    def train():
        for p in model.parameters():
            p.requires_grad_(False)
        model.model.layers[0].mlp.down_proj.weight.requires_grad_(True)  # backward through every layer
        model(ids_t).logits.float().logsumexp(-1).mean().backward()
        model.model.layers[0].mlp.down_proj.weight.grad = None

    rows = [("Linear 576->1536, 256 rows", 256, timed(lambda: lin(x).sum().item())),
            (f"{args.model} forward 8 x 128", 1024, timed(fwd)),
            (f"{args.model} forward+backward 4 x 128", 512, timed(train))]
    c = auto_choice()
    print(f"capability {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; dtype auto -> {c.dtype} ({c.reason})")
    print(f"{'workload':<40} {'fp32 s':>8} {'bf16 s':>8} {'fp32 tok/s':>11} {'bf16 tok/s':>11} {'bf16/fp32':>10}")
    for name, toks, (f, b) in rows:
        print(f"{name:<40} {f:>8.3f} {b:>8.3f} {toks / f:>11.0f} {toks / b:>11.0f} {b / f:>10.2f}")


if __name__ == "__main__":
    main()
