"""Benchmark: one REINFORCE step on a choice task (arc_easy_cloze), whole batch vs micro-batches.

Each setting runs in its own process (peak RSS is per process), on the same seeded batches;
printed side by side: median step time and peak resident memory, with ratios against the
whole-batch step. Micro-batches recompute the candidates' forward with a graph after a
forward without one (the draw), so they trade time for memory.

    python bench/choice.py --model smollm2-135m --batch 16 --micro 8 4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def worker(args: argparse.Namespace) -> None:
    import torch

    from t2core.models import load_model
    from t2core.svf.placement import resident_svd
    from t2core.training.config import RLConfig
    from t2core.training.reinforce import ReinforceTrainer

    torch.manual_seed(args.seed)
    loaded = load_model(args.model, seed=args.seed)
    svd = resident_svd(loaded, "mlp")
    cfg = RLConfig(task=args.task, batch_size=args.batch, micro_batch_size=args.micro or None, temperature=1.0,
                   reward_norm=True, lr=5e-3, dtype=args.dtype, seed=args.seed, valid_limit=1)
    trainer = ReinforceTrainer(loaded, svd, cfg, args.data_dir)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        point = trainer.step(step)
        times.append(time.perf_counter() - t0)
    trainer.adapter.close()
    print(json.dumps({"micro": args.micro, "step_s": statistics.median(times), "reward": point.mean_reward,
                      "rss_before_mb": rss_before,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="arc_easy_cloze")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--micro", type=int, nargs="*", default=[8, 4], help="micro-batch sizes to compare")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.micro = args.micro[0] if args.micro else 0
        return worker(args)
    rows = []
    for micro in [0, *args.micro]:  # 0: the whole batch in one differentiable forward
        cmd = [sys.executable, __file__, "--worker", "--model", args.model, "--task", args.task, "--batch",
               str(args.batch), "--micro", str(micro), "--steps", str(args.steps), "--dtype", args.dtype,
               "--seed", str(args.seed)] + (["--data-dir", args.data_dir] if args.data_dir else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
    base = rows[0]
    print(f"{args.model} {args.task}, batch {args.batch}, {args.dtype}, median of {args.steps} steps")
    print(f"{'micro-batch':>12} {'step s':>8} {'x time':>7} {'peak RSS MB':>12} {'x memory':>9} {'RSS before steps MB':>20}")
    for r in rows:
        label = "whole" if not r["micro"] else str(r["micro"])
        print(f"{label:>12} {r['step_s']:8.1f} {r['step_s'] / base['step_s']:7.2f} {r['peak_rss_mb']:12.0f} "
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:9.2f} {r['rss_before_mb']:20.0f}")


if __name__ == "__main__":
    main()
