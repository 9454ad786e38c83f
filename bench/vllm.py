"""Benchmark: the `hf` sampler vs the `vllm` sampler, side by side in one run (issue: vLLM sampler).

Same model, prompts (GSM8K test questions in the chat template), precision and answer length:
- generation throughput (new tokens / wall second) at batch 1, 8, 32, 64, and how many answers
  came out token-identical;
- the vLLM server's start (process spawn to ready; the engine's own share as the server reports it);
- an expert swap (z vectors sent, W' = U diag(s ⊙ z) Vᵀ built and reloaded, prefix cache reset),
  against the time of one 128-token answer at batch 1;
- REINFORCE step time on the `smol` profile's GSM8K config (rollouts through each sampler, the
  gradient always on the caller's model).

Goals on a 2-core CPU: vLLM >= 3x hf at batch 32; a swap < 5% of one 128-token answer.

    python bench/vllm.py --dtype bfloat16            # needs `make vllm-env`
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
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--prompts", type=int, default=64, help="prompts per batch size (batch 1 uses --prompts-b1)")
    ap.add_argument("--prompts-b1", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--swaps", type=int, default=5)
    ap.add_argument("--rl-steps", type=int, default=2, help="REINFORCE steps per sampler (0: skip)")
    ap.add_argument("--compiled", action="store_true", help="a compiled vLLM engine (slow start) instead of eager")
    args = ap.parse_args()

    import torch

    from t2core.models import load_model
    from t2core.paths import resolve_data_dir
    from t2core.profiles import get_profile
    from t2core.sampling import GenerationConfig, SVFWeights, make_sampler
    from t2core.sampling.vllm import VLLMSampler
    from t2core.serving.vllm_env import ServerSettings
    from t2core.svd import ensure_svd, load_svd
    from t2core.tasks import get_task
    from t2core.training.reinforce import ReinforceTrainer

    loaded = load_model(args.model)
    task = get_task("gsm8k")
    samples = task.load("test", resolve_data_dir()).limit(max(args.prompts, args.prompts_b1)).samples
    convs = [task.messages(s) for s in samples]
    hf = make_sampler("hf", loaded=loaded)
    t0 = time.perf_counter()
    vl = VLLMSampler(loaded, ServerSettings(enforce_eager=not args.compiled))
    srv = vl.server(args.dtype)
    start_wall = time.perf_counter() - t0
    print(f"{args.model} {args.dtype}, {args.max_new_tokens} new tokens, torch threads {torch.get_num_threads()}, "
          f"vLLM {'compiled' if args.compiled else 'eager'}")
    print(f"vLLM server start: {start_wall:.1f} s wall (engine {srv.info['start_seconds']:.1f} s; "
          f"vllm {srv.info['vllm']}, torch {srv.info['torch']})")
    vl.generate(convs[:2], GenerationConfig(max_new_tokens=8, dtype=args.dtype))  # warm-up, both sides
    hf.generate(convs[:2], GenerationConfig(max_new_tokens=8, dtype=args.dtype))

    print(f"{'batch':>5} {'prompts':>7} {'hf tok/s':>9} {'vllm tok/s':>10} {'ratio':>6} {'same ids':>8}")
    per_token_b1 = None
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
        print(f"{b:>5} {n:>7} {rates['hf']:>9.1f} {rates['vllm']:>10.1f} {rates['vllm'] / rates['hf']:>5.2f}x "
              f"{same:>4}/{n}")

    svd = load_svd(ensure_svd(loaded, "mlp"))
    g = torch.Generator().manual_seed(0)
    walls, step_s = [], []
    for _ in range(args.swaps):
        svf = SVFWeights(loaded.weights_hash, {k: 1 + 0.05 * torch.randn(s.shape[0], generator=g)
                                               for k, (_, s, _) in svd.items()})
        srv.activate(None)
        t0 = time.perf_counter()
        srv.activate(svf)
        walls.append(time.perf_counter() - t0)
    answer = (per_token_b1 or float("nan")) * 128
    swap = statistics.median(walls)
    print(f"expert swap ({len(svd)} matrices, median of {args.swaps}): {swap:.2f} s wall; one 128-token answer at "
          f"batch 1: {answer:.2f} s; swap/answer = {100 * swap / answer:.1f}% (goal < 5%)")

    if args.rl_steps:
        prof = get_profile("smol")
        cfg = prof.rl_config("gsm8k")
        for name, smp in (("hf", hf), ("vllm", vl)):
            trainer = ReinforceTrainer(loaded, svd, cfg, sampler=smp)
            times = []
            for step in range(1, args.rl_steps + 1):
                t0 = time.perf_counter()
                pt = trainer.step(step)
                times.append(time.perf_counter() - t0)
            step_s.append(statistics.median(times))
            print(f"REINFORCE step, smol gsm8k (batch {cfg.batch_size}, {cfg.max_new_tokens} tokens, T={cfg.temperature}) "
                  f"via {name}: {statistics.median(times):.1f} s median of {len(times)} (last reward {pt.mean_reward:+.2f})")
            trainer.adapter.close()
        print(f"RL step speed-up: {step_s[0] / step_s[1]:.2f}x")


if __name__ == "__main__":
    main()
