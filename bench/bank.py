"""Benchmark: one batch answered with several SVF experts (paper §3.3's per-request experts).

A batch of `--prompts` chat prompts (GSM8K test questions), row b assigned expert b mod K,
generates `--new` tokens each (greedy, exactly that many), three ways, in one run:

- (a) factored per-row: one `generate` over the whole batch with `per_row` (t2core/svf/bank.py),
  U((s ⊙ m_b) ⊙ Vᵀx) with each row's own multipliers;
- (a') grouped per layer: one `generate` over the whole batch with `per_row(mode="grouped")`:
  one W' per expert, each applied to its own rows inside every layer;
- (b) grouped: the rows of each expert in their own `generate`, W' materialised per group;
- (c) ceiling: one expert materialised for every row, one `generate` (what a batch costs when
  all rows share an expert).

Prints new tokens per second and the ratios to (c). Goal: the best of (a)/(a')/(b) >= 0.8 x (c).

    python bench/bank.py --model smollm2-135m --prompts 32 --experts 3 --new 32 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def random_bank(loaded, k: int):
    """(svd, policies, bank): k random experts z = 1 + 0.05·N(0, 1) (seeds 0..k-1) on the "mlp" decomposition;
    the cost of applying an expert does not depend on what z holds (also used by bench/cem.py)."""
    import torch

    from t2core.svf import SVFPolicy, ranks_of, svf_weights
    from t2core.svf.bank import ExpertBank
    from t2core.svf.placement import place_bank, place_policy, resident_svd

    svd = resident_svd(loaded, "mlp")
    policies = []
    for i in range(k):
        p = place_policy(SVFPolicy(ranks_of(svd)), loaded.model)
        g = torch.Generator().manual_seed(i)
        p.load_raw_state({n: v + 0.05 * torch.randn(v.shape, generator=g) for n, v in p.raw_state().items()})
        policies.append(p)
    return svd, policies, place_bank(ExpertBank.of([svf_weights(p, svd, loaded.weights_hash) for p in policies]),
                                     loaded.model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--experts", type=int, default=3)
    ap.add_argument("--new", type=int, default=32, help="new tokens per prompt")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each round times every way once (median kept)")
    args = ap.parse_args()

    import torch

    from t2core.models import load_model
    from t2core.paths import resolve_data_dir
    from t2core.sampling.hf import bf16_autocast, render_prompt
    from t2core.svf import materialised
    from t2core.svf.bank import one_hot, per_row
    from t2core.tasks import get_task, load_split

    loaded = load_model(args.model)
    model, tok = loaded.model, loaded.tokenizer
    svd, policies, bank = random_bank(loaded, args.experts)
    task = get_task("gsm8k")
    samples = load_split("gsm8k", "test", resolve_data_dir(), limit=args.prompts).samples
    texts = [render_prompt(tok, task.messages(s)) for s in samples]
    rows = [b % args.experts for b in range(len(texts))]
    tok.padding_side = "left"

    def generate(idx: list[int]) -> int:
        batch = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**batch, max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        return (out.shape[1] - batch["input_ids"].shape[1]) * len(idx)

    def autocast():
        return bf16_autocast(model, torch.device("cpu")) if args.dtype == "bfloat16" else contextlib.nullcontext()

    everyone = list(range(len(texts)))

    def factored() -> int:
        with per_row(model, svd, bank, one_hot(rows, bank.k), dtype=args.dtype), autocast():
            return generate(everyone)

    def grouped_layers() -> int:
        with per_row(model, svd, bank, one_hot(rows, bank.k), dtype=args.dtype, mode="grouped"), autocast():
            return generate(everyone)

    def grouped() -> int:
        n = 0
        for k, pol in enumerate(policies):
            with materialised(model, svd, pol, dtype=args.dtype), autocast():
                n += generate([b for b in everyone if rows[b] == k])
        return n

    def ceiling() -> int:
        with materialised(model, svd, policies[0], dtype=args.dtype), autocast():
            return generate(everyone)

    ways = {"(a) factored, per-row experts": factored, "(a') one batch, W' per expert inside each layer": grouped_layers,
            "(b) grouped by expert, materialised": grouped,
            "(c) one expert for all rows (ceiling)": ceiling}
    # rounds interleave the ways, so a slow spell of the machine hits all of them alike; each way's
    # ratio to the ceiling is taken within a round, and the median over rounds is reported
    rates: dict[str, list[float]] = {name: [] for name in ways}
    with torch.no_grad():
        factored()  # warm-up
        for _ in range(args.repeats):
            for name, fn in ways.items():
                t0 = time.perf_counter()
                n = fn()
                rates[name].append(n / (time.perf_counter() - t0))
    top = rates["(c) one expert for all rows (ceiling)"]
    print(f"{args.model}, {args.dtype}, {len(texts)} prompts, {args.experts} experts, {args.new} new tokens each, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved rounds\n")
    print("| way | new tokens/s (median) | x ceiling, per round | x ceiling (median) |")
    print("|---|---|---|---|")
    for name, r in rates.items():
        ratios = [a / c for a, c in zip(r, top, strict=True)]
        print(f"| {name} | {statistics.median(r):.1f} | {' / '.join(f'{x:.2f}' for x in ratios)} | "
              f"{statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
