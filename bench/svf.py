"""Benchmark: SVF vs LoRA training steps, expert swap cost, trainable parameters.

All timings are measured side by side in one run, on the same batch, and printed as
ratios (machines are noisy: compare ratios, not seconds).

- train step (forward + backward + Adam step, same token batch): SVF factored, SVF
  materialised, PEFT LoRA r16 on q/v; goal: SVF / LoRA <= 1.0;
- expert swap (load z from its file + materialise every targeted W') vs one greedy answer
  of 128 new tokens, in fp32 and in bf16 (W' built by a bf16 GEMM when generation runs
  under bf16 autocast); goal: < 5%;
- trainable parameters per method (SVF MLP ~0.05M on smollm2-135m).

    python bench/svf.py --model smollm2-135m --batch 8 --seq 256 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

from t2core.models import load_model
from t2core.sampling.hf import bf16_autocast
from t2core.svf import (
    ExpertHeader,
    SVFConfig,
    SVFPolicy,
    attached,
    load_expert,
    materialised,
    ranks_of,
    save_expert,
)
from t2core.svf.placement import place_policy, resident_svd


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["train", "swap"], default=None, help="run one half of the benchmark")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    loaded = load_model(args.model, seed=args.seed)
    model = loaded.model
    svd = resident_svd(loaded, "mlp")
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    tokens = args.batch * args.seq

    if args.only != "swap":
        train_steps(args, loaded, svd, ids, autocast, tokens)
    if args.only != "train":
        swap_vs_answer(args, loaded, svd)


def train_steps(args, loaded, svd, ids, autocast, tokens) -> None:
    model = loaded.model

    def svf_step(mode: str):
        pol = place_policy(SVFPolicy(ranks_of(svd), SVFConfig(mode=mode)), model)
        opt = torch.optim.Adam(pol.parameters(), lr=2e-3)

        def step():
            with attached(model, svd, pol, mode), autocast:
                loss = model(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(pol.parameters(), 1e-3)
            opt.step()

        return step, pol.n_params

    results = {}
    for mode in ("factored", "materialise"):
        step, n = svf_step(mode)
        results[f"svf-{mode}"] = (timed(step, args.repeats), n)

    from t2core.adapters import with_adapter
    from t2core.training.ntp import NTPConfig

    with with_adapter(loaded, cfg=NTPConfig(task="arc_easy")) as lm:
        params = [p for p in lm.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=2e-4)

        def lora_step():
            with autocast:
                loss = lm.model(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()

        results["lora-r16-qv"] = (timed(lora_step, args.repeats), sum(p.numel() for p in params))

    print(f"model {args.model}  batch {args.batch} x seq {args.seq}  dtype {args.dtype}  median of {args.repeats}")
    lora_s = results["lora-r16-qv"][0]
    print(f"{'method':16} {'step s':>8} {'tok/s':>8} {'vs LoRA':>8} {'trainable':>10}")
    for name, (sec, n) in results.items():
        print(f"{name:16} {sec:8.3f} {tokens / sec:8.0f} {sec / lora_s:8.2f} {n:10d}")


def swap_vs_answer(args, loaded, svd) -> None:
    """Expert swap vs one greedy answer of 128 tokens, each in fp32 and in bf16."""
    model = loaded.model
    pol = place_policy(SVFPolicy(ranks_of(svd), SVFConfig()), model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        save_expert(path, pol, ExpertHeader(loaded.weights_hash, loaded.alias, "bench", {"targets": "mlp"},
                                            ranks_of(svd)))

        def swap(dt: str):
            p = place_policy(load_expert(path, loaded.weights_hash)[0], model)
            with materialised(model, svd, p, dtype=dt):
                pass  # building W' for every targeted matrix (and restoring) is the swap cost

        load_s = timed(lambda: load_expert(path, loaded.weights_hash), args.repeats)
        tok = loaded.tokenizer
        prompt = tok.apply_chat_template([{"role": "user", "content": "Write a long story about a robot."}],
                                         add_generation_prompt=True, return_tensors="pt", return_dict=True)

        def answer(dt: str):  # the hf sampler's precision handling (bf16: autocast with its cast cache)
            with torch.no_grad(), (bf16_autocast(model, torch.device("cpu")) if dt == "bfloat16"
                                   else contextlib.nullcontext()):
                model.generate(**prompt, max_new_tokens=128, min_new_tokens=128, do_sample=False,
                               pad_token_id=tok.pad_token_id)

        gen_reps = max(1, args.repeats // 2)
        for dt in ("float32", "bfloat16"):  # W' is built in the precision generation runs in
            swap_s = timed(lambda dt=dt: swap(dt), args.repeats)
            gen_s = timed(lambda dt=dt: answer(dt), gen_reps)
            print(f"materialised path, {dt}: expert swap (load z + build every W' + restore) {swap_s:.3f}s vs greedy "
                  f"128-token answer {gen_s:.3f}s: {swap_s / gen_s:.1%} (goal < 5%)")
        with attached(model, svd, pol, "factored"):
            gen_factored_s = timed(lambda: answer(args.dtype), gen_reps)
        gen_s = timed(lambda: answer(args.dtype), gen_reps)
    print(f"factored path, {args.dtype}: swap = load z only {load_s:.4f}s ({load_s / gen_s:.2%} of an answer); the "
          f"answer itself takes {gen_factored_s:.3f}s ({gen_factored_s / gen_s:.2f}x the materialised one)")


if __name__ == "__main__":
    main()
