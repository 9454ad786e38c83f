"""Benchmark: the `hf` sampler vs the `vllm` sampler, side by side in one run (issues: vLLM sampler, 23).

Same model, prompts (GSM8K test questions in the chat template), precision and answer length, at a
profile's settings (`--profile`: its model, resolved dtype, batch and REINFORCE config):
- generation throughput (new tokens / wall second) at batch 1 and the profile's batch, and how many
  answers came out token-identical;
- the vLLM server's start (process spawn to ready; the engine's own share as the server reports it);
- an expert swap (z vectors sent, W' = U diag(s ⊙ z) Vᵀ built and reloaded, prefix cache reset),
  against the time of one 128-token answer at batch 1;
- a REINFORCE step on the profile's config for `--rl-task` (rollouts through each sampler, the
  gradient always on the caller's model);
- the few-shot CEM population (the profile's population and shots) scored as one batch against
  member by member (`ShotScorer.batched` / `one_at_a_time`, as bench/cem.py).

The four ratios are printed together at the end, beside their goals: vLLM >= 3x hf at the profile's
batch; a swap < 5% of one answer; the RL step with vLLM rollouts >= 2.5x the step with hf rollouts; the
batched population >= 3x member by member.

    python bench/vllm.py                                   # smol (SmolLM2-135M); needs `make vllm-env`
    python bench/vllm.py --profile qwen --prompts 32 --rl-steps 1 --cem-repeats 1   # Qwen2.5-Coder-0.5B
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _matmul_gflops(loaded, rows: int, dtype: str) -> float:
    """GFLOP/s of the model's largest MLP matmul at `rows` rows (a decode step's shape) in this process's
    threads, under the same autocast: the ceiling generation could reach if matmuls were all it did."""
    import torch

    w = max((m.weight for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Linear) and ".mlp." in n),
            key=lambda t: t.numel())
    x = torch.randn(rows, w.shape[1])
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else torch.no_grad()
    with torch.no_grad(), ctx:
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        n, t0 = 20, time.perf_counter()
        for _ in range(n):
            torch.nn.functional.linear(x, w)
        dt = time.perf_counter() - t0
    return 2 * rows * w.numel() * n / dt / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smol", help="whose model, dtype, batch and RL config (smol, qwen)")
    ap.add_argument("--model", default=None, help="default: the profile's")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: the profile's, resolved")
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="default: 1 and the profile's batch")
    ap.add_argument("--prompts", type=int, default=64, help="prompts per batch size (batch 1 uses --prompts-b1)")
    ap.add_argument("--prompts-b1", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--swaps", type=int, default=5)
    ap.add_argument("--rl-task", default="gsm8k")
    ap.add_argument("--rl-steps", type=int, default=2, help="REINFORCE steps per sampler (0: skip)")
    ap.add_argument("--micro-batch-size", type=int, default=None, help="RL gradient rows at a time (memory; "
                                                                       "default: the profile's)")
    ap.add_argument("--cem-task", default="arc_challenge_cloze")
    ap.add_argument("--cem-repeats", type=int, default=2, help="rounds of each CEM scoring (0: skip)")
    ap.add_argument("--compiled", action="store_true", help="a compiled vLLM engine (slow start) instead of eager")
    ap.add_argument("--server-threads", default="turns", choices=["turns", "split"],
                    help="CPU threads of the server and this process: in turns (default) or split (t2core/threads.py)")
    args = ap.parse_args()

    import torch

    from t2core.models import load_model
    from t2core.paths import resolve_data_dir
    from t2core.precision import resolve_dtype
    from t2core.profiles import get_profile
    from t2core.sampling import GenerationConfig, SVFWeights, make_sampler
    from t2core.sampling.vllm import VLLMSampler
    from t2core.serving.vllm_env import ServerSettings
    from t2core.svf.placement import resident_svd
    from t2core.tasks import get_task
    from t2core.training.reinforce import ReinforceTrainer

    prof = get_profile(args.profile)
    args.model = args.model or prof.model
    args.dtype = args.dtype or resolve_dtype(prof.dtype)
    args.batches = args.batches or sorted({1, prof.batch_size})
    loaded = load_model(args.model)
    task = get_task("gsm8k")
    samples = task.load("test", resolve_data_dir()).limit(max(args.prompts, args.prompts_b1)).samples
    convs = [task.messages(s) for s in samples]
    hf = make_sampler("hf", loaded=loaded)
    t0 = time.perf_counter()
    vl = VLLMSampler(loaded, ServerSettings(enforce_eager=not args.compiled, threads=args.server_threads))
    srv = vl.server(args.dtype)
    start_wall = time.perf_counter() - t0
    print(f"{args.model} {args.dtype}, {args.max_new_tokens} new tokens, torch threads {torch.get_num_threads()}, "
          f"vLLM {'compiled' if args.compiled else 'eager'}, server threads {args.server_threads}")
    print(f"vLLM server start: {start_wall:.1f} s wall (engine {srv.info['start_seconds']:.1f} s; "
          f"vllm {srv.info['vllm']}, torch {srv.info['torch']})")
    vl.generate(convs[:2], GenerationConfig(max_new_tokens=8, dtype=args.dtype))  # warm-up, both sides
    hf.generate(convs[:2], GenerationConfig(max_new_tokens=8, dtype=args.dtype))

    print(f"{'batch':>5} {'prompts':>7} {'hf tok/s':>9} {'vllm tok/s':>10} {'ratio':>6} {'same ids':>8}")
    per_token_b1, ratios, gflop = None, {}, {}
    for b in args.batches:
        n = args.prompts_b1 if b == 1 else args.prompts
        cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=b, dtype=args.dtype)
        rates, outs = {}, {}
        for name, smp in (("hf", hf), ("vllm", vl)):
            t0 = time.perf_counter()
            outs[name] = smp.generate(convs[:n], cfg)
            dt = time.perf_counter() - t0
            rates[name] = sum(c.n_new_tokens for c in outs[name]) / dt
            if b == 1 and name == "vllm":
                per_token_b1 = dt / sum(c.n_new_tokens for c in outs[name])
        same = sum(a.completion_ids == c.completion_ids for a, c in zip(outs["hf"], outs["vllm"], strict=True))
        ratios[b] = rates["vllm"] / rates["hf"]
        gflop[b] = {k: 2 * loaded.n_params * v / 1e9 for k, v in rates.items()}  # ~2 FLOP per weight per token
        print(f"{b:>5} {n:>7} {rates['hf']:>9.1f} {rates['vllm']:>10.1f} {rates['vllm'] / rates['hf']:>5.2f}x "
              f"{same:>4}/{n}")

    top = max(args.batches)
    print(f"  where generation goes at batch {top}: ~{gflop[top]['hf']:.0f} GFLOP/s (hf) and ~{gflop[top]['vllm']:.0f} "
          f"(vLLM) of weight matmuls (2 x {loaded.n_params / 1e6:.0f}M parameters per token); the matmul ceiling "
          f"of this machine at the same rows: {_matmul_gflops(loaded, top, args.dtype):.0f} GFLOP/s")

    svd = resident_svd(loaded, "mlp")
    g = torch.Generator().manual_seed(0)
    walls, builds, step_s = [], [], []
    for _ in range(args.swaps):
        svf = SVFWeights(loaded.weights_hash, {k: 1 + 0.05 * torch.randn(s.shape[0], generator=g)
                                               for k, (_, s, _) in svd.items()})
        srv.activate(None)
        t0 = time.perf_counter()
        srv.activate(svf)
        walls.append(time.perf_counter() - t0)
        builds.append(srv.last_swap.get("build_seconds", float("nan")))
    answer = (per_token_b1 or float("nan")) * 128
    swap = statistics.median(walls)
    flop = sum(2 * u.shape[0] * u.shape[1] * v.shape[0] for u, _, v in svd.values())  # U diag(s ⊙ z) Vᵀ per matrix
    build = statistics.median(builds)
    print(f"expert swap ({len(svd)} matrices, median of {args.swaps}): {swap:.2f} s wall; one 128-token answer at "
          f"batch 1: {answer:.2f} s; swap/answer = {100 * swap / answer:.1f}% (goal < 5%)")
    print(f"  where the swap goes: building W' {build:.2f} s ({flop / 1e9:.0f} GFLOP, {flop / build / 1e9:.0f} GFLOP/s), "
          f"reload + prefix-cache reset + transfer {swap - build:.2f} s")

    rl_speedup = cem_speedup = None
    if args.rl_steps:
        given = {"micro_batch_size": args.micro_batch_size} if args.micro_batch_size else {}
        cfg = prof.rl_config(args.rl_task, dtype=args.dtype, **given)
        for name, smp in (("hf", hf), ("vllm", vl)):
            trainer = ReinforceTrainer(loaded, svd, cfg, sampler=smp)
            times, rollouts = [], []
            inner = trainer.rollout

            def timed_rollout(*a, _inner=inner, _log=rollouts, **kw):  # the rollouts' share of the step (with any swap)
                t0 = time.perf_counter()
                try:
                    return _inner(*a, **kw)
                finally:
                    _log.append(time.perf_counter() - t0)

            trainer.rollout = timed_rollout
            for step in range(1, args.rl_steps + 1):
                t0 = time.perf_counter()
                pt = trainer.step(step)
                times.append(time.perf_counter() - t0)
            step_s.append(statistics.median(times))
            ro = statistics.median(rollouts)
            print(f"RL step, {args.profile} {args.rl_task} (batch {cfg.batch_size}, {cfg.max_new_tokens} tokens, "
                  f"T={cfg.temperature}) via {name}: {statistics.median(times):.1f} s median of {len(times)}: rollouts "
                  f"{ro:.1f} s, gradient and update {statistics.median(times) - ro:.1f} s (last reward {pt.mean_reward:+.2f})")
            trainer.adapter.close()
        rl_speedup = step_s[0] / step_s[1]
        print(f"RL step speed-up: {rl_speedup:.2f}x")
    srv.close()  # the CEM comparison below is two ways of the hf sampler

    if args.cem_repeats:
        from bench.bank import random_bank
        from t2core.adapt import cem
        from t2core.adapt.fewshot import ShotScorer, pick_shots

        few = prof.few_shot_config(args.cem_task, dtype=args.dtype)
        _, _, bank = random_bank(loaded, len(prof.adapt.experts) or 3)
        scorer = ShotScorer(hf, loaded.model, svd, bank, get_task(args.cem_task), pick_shots(few), few)
        pop = cem.population(few.cem, cem.start(few.cem, bank.k))
        cem_s: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
        for _ in range(args.cem_repeats):
            for name in cem_s:
                t0 = time.perf_counter()
                getattr(scorer, name)(pop)
                cem_s[name].append(time.perf_counter() - t0)
        a, b = statistics.median(cem_s["batched"]), statistics.median(cem_s["one_at_a_time"])
        cem_speedup = b / a
        print(f"CEM population, {args.cem_task}: {few.cem.population} members x {few.shots} shots, batch "
              f"{few.batch_size}: one batch {a:.1f} s, member by member {b:.1f} s per generation")

    def verdict(value, goal, higher=True):
        if value is None:
            return "not measured"
        return "met" if (value >= goal if higher else value < goal) else "MISSED"

    print(f"\n{args.model} {args.dtype} (profile {args.profile}): the four ratios")
    print(f"  generation vLLM / hf at batch {top}: {ratios[top]:.2f}x  (goal >= 3x: {verdict(ratios[top], 3)})")
    print(f"  expert swap / one 128-token answer: {100 * swap / answer:.1f}%  (goal < 5%: "
          f"{verdict(100 * swap / answer, 5, higher=False)})")
    print("  RL step, hf rollouts / vLLM rollouts: " + (f"{rl_speedup:.2f}x" if rl_speedup else "-")
          + f"  (goal >= 2.5x: {verdict(rl_speedup, 2.5)})")
    print("  CEM population, member by member / one batch: " + (f"{cem_speedup:.2f}x" if cem_speedup else "-")
          + f"  (goal >= 3x: {verdict(cem_speedup, 3)})")

if __name__ == "__main__":
    main()
