"""Benchmark: how often pass 1's token cap cuts the classifier's answer before its box (issue 34).

The prompt strategy's generate formulation (paper §3.3) parses the last `\\boxed{category}` of what the model
wrote; an answer cut by `max_new_tokens` before its box is read as "other" (base weights), whatever the model
was about to say. This generates each classification once, greedily, with a long cap (`--long`), and reads
off what a shorter cap (`--cap`, today's 32) would have kept: greedy decoding writes the same tokens whatever
the cap, so the first `cap` tokens are the capped answer. Per pass-1 setting (prompt, question form):

- `boxed@cap`: answers whose first box closes within `cap` tokens (the capped answer parses as the long one);
- `cut`: answers that reach a box only after `cap` tokens (the cap changes the decision to "other");
- `no box`: no box even within `long` tokens (the cap does not matter);
- `changed`: answers whose parsed category differs between the capped and the long answer.

Questions come from the validation (or train) splits, never test: `--per-task` from each of `--tasks`.

    python bench/pass1_cap.py --model smollm2-135m --per-task 12
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_BOX = re.compile(r"\\boxed\{[^}]*\}")


def first_box_token(tok, ids: list[int]) -> int | None:
    """The number of tokens after which the answer's first complete `\\boxed{...}` has been written."""
    for n in range(1, len(ids) + 1):
        if _BOX.search(tok.decode(ids[:n], skip_special_tokens=True)):
            return n
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tasks", nargs="+", default=["gsm8k", "mbpp", "arc_easy"])
    ap.add_argument("--split", default="valid", choices=["train", "valid"], help="never test")
    ap.add_argument("--per-task", type=int, default=12, help="questions per task")
    ap.add_argument("--cap", type=int, default=32, help="the cap measured (t2's pass-1 default)")
    ap.add_argument("--long", type=int, default=256, help="the cap the answers are generated with")
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--sampler", default="hf", help="hf (token ids needed)")
    ap.add_argument("--settings", nargs="+", default=["t2", "released"],
                    help="t2: t2's prompt on the task's user turn (smol, qwen); released: the released code's "
                         "prompt on the bare question (paper)")
    ap.add_argument("--show", type=int, default=2, help="print the first N answers of each setting")
    args = ap.parse_args()

    from t2core.adapt.pass1 import bare_question, messages
    from t2core.adapt.twopass import question_of
    from t2core.models import load_model
    from t2core.paths import resolve_data_dir
    from t2core.sampling import make_sampler
    from t2core.sampling.base import GenerationConfig
    from t2core.tasks import get_task
    from t2core.tasks.categories import parse_category

    loaded = load_model(args.model)
    tok = loaded.tokenizer
    sampler = make_sampler(args.sampler, loaded=loaded)
    gen = GenerationConfig(max_new_tokens=args.long, batch_size=args.batch_size)  # greedy
    items = []
    for name in args.tasks:
        task = get_task(name)
        for s in task.load(args.split, resolve_data_dir()).limit(args.per_task).samples:
            items.append((task, s))
    known = {"t2": ("t2", "task's user turn", question_of), "released": ("released", "bare question", bare_question)}
    settings = [known[k] for k in args.settings]
    print(f"{args.model}, {args.sampler}, greedy; {len(items)} {args.split} questions ({', '.join(args.tasks)}, "
          f"{args.per_task} each); cap {args.cap} read off answers generated up to {args.long} tokens")
    print(f"{'prompt':<9} {'question':<17} {'boxed@cap':>9} {'cut':>5} {'no box':>6} {'changed':>7} "
          f"{'median tokens to box':>20} {'seconds':>8}")
    for prompt, form, question in settings:
        convs = [messages(question(t, s), prompt) for t, s in items]
        t0 = time.perf_counter()
        outs = sampler.generate(convs, gen)
        dt = time.perf_counter() - t0
        within = cut = none = changed = 0
        at = []
        for o in outs:
            ids = list(o.completion_ids or tok(o.text, add_special_tokens=False)["input_ids"])
            n = first_box_token(tok, ids)
            short = tok.decode(ids[:args.cap], skip_special_tokens=True)
            changed += parse_category(short) != parse_category(o.text)
            if n is None:
                none += 1
            elif n <= args.cap:
                within += 1
                at.append(n)
            else:
                cut += 1
                at.append(n)
        med = sorted(at)[len(at) // 2] if at else float("nan")
        k = len(outs)
        print(f"{prompt:<9} {form:<17} {within / k:>9.3f} {cut / k:>5.3f} {none / k:>6.3f} {changed / k:>7.3f} "
              f"{med:>20} {dt:>8.1f}", flush=True)
        for o in outs[:args.show]:
            print(f"    {o.text[:160]!r}", flush=True)


if __name__ == "__main__":
    main()
