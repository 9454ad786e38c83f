"""Benchmark: pass 1 of the prompt strategy (paper §3.3) on validation questions, both formulations side by side.

The prompt strategy asks the base model to name each question's category. How well it does decides what
pass 2 applies, so it is measured here on the training tasks' validation splits (never test), per task and
formulation (`generate`: the model writes `\\boxed{category}`, the paper's; `choice`: the four
"Category: \\boxed{c}" answers scored by likelihood):
- the share of questions routed to their own category (GSM8K -> math, MBPP -> code, ARC-Easy -> reasoning);
- where the others went (a row of the confusion matrix), and the seconds.

    python bench/dispatch.py --model qwen2.5-coder-0.5b --limit 64 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tasks", nargs="+", default=["gsm8k", "mbpp", "arc_easy_cloze"])
    ap.add_argument("--split", default="valid", choices=["train", "valid"], help="never test")
    ap.add_argument("--limit", type=int, default=64, help="questions per task")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--sampler", default="hf", help="hf or vllm (`choice` scores through the same sampler)")
    args = ap.parse_args()

    from t2core.adapt.dispatch import ExpertSet
    from t2core.adapt.prompt import FORMULATIONS, PromptDispatch
    from t2core.adapt.twopass import question_of
    from t2core.models import load_model
    from t2core.paths import resolve_data_dir
    from t2core.sampling import make_sampler
    from t2core.tasks import get_task

    loaded = load_model(args.model)
    sampler = make_sampler(args.sampler, loaded=loaded)
    none = ExpertSet(())  # pass 1 only: no expert is applied
    print(f"{args.model} {args.dtype}, {args.sampler}, {args.split} split, first {args.limit} questions per task")
    print(f"{'formulation':<11} {'task':<15} {'own category':>12} {'seconds':>8}  routed to")
    for form in FORMULATIONS:
        strategy = PromptDispatch(form, args.batch_size, args.dtype)
        for name in args.tasks:
            task = get_task(name)
            samples = task.load(args.split, resolve_data_dir()).limit(args.limit).samples
            t0 = time.perf_counter()
            got = Counter(d.category for d in strategy.decide(sampler, [question_of(task, s) for s in samples], none))
            dt = time.perf_counter() - t0
            share = got[task.category] / len(samples)
            print(f"{form:<11} {name:<15} {share:>12.3f} {dt:>8.1f}  "
                  + ", ".join(f"{c} {n}" for c, n in got.most_common()))


if __name__ == "__main__":
    main()
