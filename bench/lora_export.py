"""Benchmark: how much of an SVF expert a rank-r LoRA export keeps (issue 37, docs/experts.md).

The expert's change ΔW = U diag(s ⊙ (z − 1)) Vᵀ is full rank (paper §3.2: "the ability to affect the weight
matrix in a full-rank manner"); a LoRA adapter of rank r holds its best rank-r approximation (Eckart–Young,
t2core/export/lowrank.py). For each r this measures, on one task slice, through the hf path:

- the relative Frobenius error of ΔW over all matrices (and the worst single matrix);
- the accuracy with the PEFT-loaded adapter (`peft.PeftModel.from_pretrained`, as `t2 eval --adapter` applies
  one), against the exact expert (W' materialised, as `t2 eval --expert` applies it) and the base model;
- the ratios: LoRA accuracy / expert accuracy, the share of the expert's gain over base kept, the items
  whose answer is the expert's answer, and (choice tasks) the mean total variation between the LoRA's and
  the expert's distributions over each item's candidates, also as a share of the base model's.

The full-rank row is the check: its adapter must answer as the expert does.

    T2_HOME=<a copy of a home with the expert> python bench/lora_export.py --expert svf:14eba7e0 \\
        --task arc_easy_cloze --limit 50 --ranks 8,16,32,64,128,256
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expert", required=True, help="expert id (svf:<hex>) in $T2_HOME's store, or an expert file")
    ap.add_argument("--task", default="arc_easy_cloze")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--ranks", default="8,16,32,64,128,256", help="comma-separated; capped at the matrix rank, and "
                                                                  "the full rank is always added")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    import torch

    from t2core.adapters import with_adapter
    from t2core.evaluate import EvalConfig, answer, plan_eval, sample_rows
    from t2core.experts import ExpertRef
    from t2core.export import stored_factors, to_peft
    from t2core.export.lowrank import max_rank, spectra, truncation
    from t2core.export.peft_lora import multipliers
    from t2core.models import load_model
    from t2core.sampling import GenerationConfig, make_sampler
    from t2core.svd import ensure_svd, load_svd
    from t2core.variants import resolve_variant

    ref = ExpertRef.resolve(args.expert)
    h = ref.header
    loaded = load_model(h.model, seed=0)
    ref.check_model(loaded.weights_hash)
    targets = h.svf.get("targets", "mlp")
    svd = stored_factors(ref) or load_svd(ensure_svd(loaded, targets))
    ds = spectra(multipliers(ref, svd), svd)
    full = max_rank(ds)
    ranks = sorted({min(int(r), full) for r in args.ranks.split(",")} | {full})
    cfg = EvalConfig(task=args.task, split=args.split, limit=args.limit,
                     generation=GenerationConfig(batch_size=args.batch_size, dtype=args.dtype))

    task, data, _, rcfg = plan_eval(loaded.weights_hash, cfg, args.data_dir)
    sampler = make_sampler("hf", loaded=loaded)

    def run(weights=None) -> Answered:
        torch.manual_seed(rcfg.generation.seed)
        t0 = time.perf_counter()
        with (weights or contextlib.nullcontext)():
            comps = answer(task, data.samples, sampler, rcfg.generation)
        rows = sample_rows(task, data.samples, comps, scoring=rcfg.scoring)
        return Answered(rows, comps, sum(r.correct for r in rows) / len(rows), time.perf_counter() - t0)

    base = run()
    exact = run(resolve_variant(loaded, expert=ref.id, dtype="float32").weights)
    print(f"{ref.id}: {h.task} expert of {h.model} ({targets}, {len(ds)} matrices of rank ≤ {full}); "
          f"{args.task}/{args.split} n={len(exact.rows)}, {args.dtype}, hf sampler")
    print(f"base {base.accuracy:.3f} ({base.seconds:.0f} s), exact expert {exact.accuracy:.3f} ({exact.seconds:.0f} s); "
          f"base vs expert: TV {tv(base, exact):.4f}, same answer {same(base, exact):.2f}\n")
    gain = exact.accuracy - base.accuracy
    rows = []
    for r in ranks:
        with tempfile.TemporaryDirectory() as tmp:
            out = to_peft(ref, Path(tmp) / "lora", rank=r, svd=svd)
            mib = sum(f.stat().st_size for f in out.path.iterdir()) / 2**20
            res = run(lambda p=out.path: with_adapter(loaded, path=p))  # PEFT's own loader, unloaded after
        cut = truncation(ds, r)
        kept = (res.accuracy - base.accuracy) / gain if gain else float("nan")
        rows.append((r, cut.error, max(cut.errors.values()), mib, res.accuracy, res.accuracy / exact.accuracy
                     if exact.accuracy else float("nan"), kept, same(res, exact), tv(res, exact), res.seconds))
        print(f"  r={r}: error {cut.error:.4f}, accuracy {res.accuracy:.3f} ({res.seconds:.0f} s)", file=sys.stderr)
    print("| rank | ΔW error (all) | worst matrix | adapter MiB | accuracy | / expert | gain kept | same answer "
          "as expert | TV to expert | TV / base's | s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    tv0 = tv(base, exact)
    for r, err, worst, mib, acc, ratio, kept, agree, dist, t in rows:
        print(f"| {r}{' (full)' if r == full else ''} | {err:.4f} | {worst:.4f} | {mib:.1f} | {acc:.3f} | "
              f"{ratio:.3f} | {kept:.2f} | {agree:.2f} | {dist:.4f} | {dist / tv0 if tv0 else float('nan'):.3f} | "
              f"{t:.0f} |")
    print(f"\nexact expert {exact.accuracy:.3f}, base {base.accuracy:.3f} (gain {gain:+.3f}); 'gain kept' = "
          "(LoRA − base) / (expert − base); 'TV to expert': mean total variation between the LoRA's and the expert's "
          "distributions over each item's candidates (choice tasks); 'TV / base's': that over the base model's TV to the "
          "expert (1: the adapter moved nothing, 0: it is the expert)")


@dataclass
class Answered:
    rows: list  # SampleResult
    comps: list  # Completion
    accuracy: float
    seconds: float


def same(a: Answered, b: Answered) -> float:
    """The share of items answered the same way."""
    return sum(x.parsed == y.parsed for x, y in zip(a.rows, b.rows, strict=True)) / len(a.rows)


def tv(a: Answered, b: Answered) -> float:
    """Mean over items of ½ Σ |p − q| over the candidates (nan for a generation task)."""
    import math

    d = [0.5 * sum(abs(math.exp(p) - math.exp(q)) for p, q in zip(x.choice_logprobs, y.choice_logprobs, strict=True))
         for x, y in zip(a.comps, b.comps, strict=True) if x.choice_logprobs and y.choice_logprobs]
    return sum(d) / len(d) if d else float("nan")


if __name__ == "__main__":
    main()
