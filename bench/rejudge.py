"""Every stored evaluation of a catalog re-judged by each scoring scheme, side by side (issues 34, 42).

For each completed evaluation (or the runs named), the outputs are scored again, nothing generated,
by each scheme asked for (`t2` with today's task versions, and `released`, the port of the paper's
code's scorers), through the same operation as `t2 rejudge` (each re-judgement is recorded as a run
linked to its source). Prints one row per evaluation: the stored accuracy, each scheme's, and the
items whose verdict moved; `--changed` lists those items.

    python bench/rejudge.py [--catalog PATH] [--run RUN_ID ...] [--scoring t2 released] [--md] [--changed]

The catalog is written (the re-judgements), so nothing else may hold it open.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", help="catalog file (default: $T2_HOME's)")
    ap.add_argument("--run", nargs="*", help="run ids or prefixes (default: every completed evaluation)")
    ap.add_argument("--scoring", nargs="+", default=["t2", "released"], help="schemes, in column order")
    ap.add_argument("--md", action="store_true", help="a markdown table")
    ap.add_argument("--changed", action="store_true", help="list every item whose verdict moved")
    args = ap.parse_args()

    from catalog import Catalog
    from catalog.execute import execute_plan
    from catalog.stored import stored_eval
    from t2ops import rejudge as op

    cat = Catalog(args.catalog) if args.catalog else Catalog()
    _, rows = cat.query("SELECT run_id FROM runs WHERE kind = 'eval' AND status = 'completed' "
                        "ORDER BY task, coalesce(strategy, ''), variant, run_id")
    wanted = [r[0] for r in rows if not args.run or any(r[0].startswith(p) for p in args.run)]
    head = ["task", "split", "evaluated", "n", "stored", *args.scoring, "moved (" + "/".join(args.scoring) + ")"]
    table, notes = [], []
    for run_id in wanted:
        src = stored_eval(cat, run_id)
        stored = sum(s.correct for s in src.samples) / max(1, len(src.samples))
        accs, moved = [], []
        for scheme in args.scoring:
            out = execute_plan(op.OP, op.OP.plan(op.RejudgeRequest(src, scheme)), None, cat)
            accs.append(f"{out.accuracy:.3f}")
            moved.append(str(out.changed))
            if args.changed and out.changed:
                _, items = cat.query("SELECT a.sample_id, a.correct, b.correct, b.parsed FROM samples a JOIN samples b "
                                     "USING (idx) WHERE a.run_id = ? AND b.run_id = ? AND a.correct <> b.correct "
                                     "ORDER BY a.idx", [src.run_id, out.run_id])
                notes += [f"{src.task} {src.variant.name} [{scheme}] {sid}: {'pass' if a else 'fail'} -> "
                          f"{'pass' if b else 'fail'} (read {p!r})" for sid, a, b, p in items]
        what = src.variant.name if not src.strategy else f"{src.strategy} ({src.variant.name[:14]})"
        table.append([src.task, src.split, what, str(len(src.samples)), f"{stored:.3f}", *accs, "/".join(moved)])
    if args.md:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in table:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *table, strict=False)]
        for r in [head, *table]:
            print("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)))
    for n in notes:
        print(n)
    print(f"{len(table)} evaluations re-judged by {', '.join(args.scoring)}")


if __name__ == "__main__":
    main()
