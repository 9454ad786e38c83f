"""Benchmark: scoring a CEM population in one batch vs one candidate at a time (paper §3.3, few-shot).

Same model, shots, experts and population, in one run:
- (a) batched: every candidate × every shot in one sampler call, each row with its own mixture
  (`ShotScorer.batched`: the factored per-row path, choice scoring from the prompts' KV cache);
- (b) one at a time: W' materialised per candidate, the shots scored with it
  (`ShotScorer.one_at_a_time`, what the official code does with a weight reload per candidate).

Prints seconds per generation, generations per minute, the ratio (a)/(b), and whether both gave
the same accuracies (and log-likelihoods within 1e-3). Goal: (a) >= 3x the generations per minute of (b).

    python bench/cem.py --model smollm2-135m --task arc_challenge_cloze --population 32 --shots 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="arc_challenge_cloze")
    ap.add_argument("--population", type=int, default=32)
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--experts", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32, help="rows per forward")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--max-new-tokens", type=int, default=64, help="generated tasks only")
    ap.add_argument("--repeats", type=int, default=2, help="rounds (median kept)")
    args = ap.parse_args()


    from bench.bank import random_bank
    from t2core.adapt import cem
    from t2core.adapt.cem import CEMConfig
    from t2core.adapt.fewshot import FewShotConfig, ShotScorer, pick_shots
    from t2core.models import load_model
    from t2core.sampling import make_sampler
    from t2core.tasks import get_task

    loaded = load_model(args.model)
    svd, _, bank = random_bank(loaded, args.experts)  # the same random experts as bench/bank.py
    cfg = FewShotConfig(task=args.task, shots=args.shots, cem=CEMConfig(population=args.population),
                        batch_size=args.batch_size, dtype=args.dtype, max_new_tokens=args.max_new_tokens)
    shots = pick_shots(cfg)
    scorer = ShotScorer(make_sampler("hf", loaded=loaded), loaded.model, svd, bank, get_task(args.task), shots, cfg)
    pop = cem.population(cfg.cem, cem.start(cfg.cem, bank.k))
    times: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    results = {}
    for _ in range(args.repeats):
        for name in times:
            t0 = time.perf_counter()
            results[name] = getattr(scorer, name)(pop)
            times[name].append(time.perf_counter() - t0)
    a, b = statistics.median(times["batched"]), statistics.median(times["one_at_a_time"])
    same_acc = [f[0] for f in results["batched"]] == [f[0] for f in results["one_at_a_time"]]
    ll_diff = max(abs(x[1] - y[1]) for x, y in zip(results["batched"], results["one_at_a_time"], strict=True))
    print(f"{args.model} {args.task} {args.dtype}: population {args.population} x {args.shots} shots, "
          f"{args.experts} experts, batch {args.batch_size}, {args.repeats} rounds (median)")
    print(f"(a) batched        {a:8.2f} s/generation  {60 / a:6.2f} generations/min")
    print(f"(b) one at a time  {b:8.2f} s/generation  {60 / b:6.2f} generations/min")
    print(f"(a)/(b) speed: {b / a:.2f}x   same accuracies: {same_acc}   max |Δ loglik|: {ll_diff:.2e}")


if __name__ == "__main__":
    main()
