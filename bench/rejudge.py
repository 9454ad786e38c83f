"""Re-judge stored code outputs with today's sandbox and list every verdict that changed.

Reads the per-sample outputs of the code evaluations (MBPP, HumanEval) in a catalog, judges each
output again with the current `t2core.sandbox` (the task's own program/test assembly), and prints
the stored verdict next to the new one, with both details where they differ. Used to show that
honest programs keep their verdicts across a change of sandbox (the catalog's verdicts came from
whatever sandbox was current when it was written).

    python bench/rejudge.py --catalog ~/.t2/catalog.duckdb [--run RUN_ID ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True, help="catalog file (read-only)")
    ap.add_argument("--run", nargs="*", help="run ids (default: every completed code evaluation)")
    args = ap.parse_args()

    import duckdb

    from t2core.paths import resolve_data_dir
    from t2core.tasks import get_task, load_split

    con = duckdb.connect(args.catalog, read_only=True)
    runs = con.execute("SELECT run_id, task, split, variant FROM runs WHERE kind='eval' AND status='completed' "
                       "AND task IN ('mbpp', 'mbpp_sanitized', 'humaneval') ORDER BY task, run_id").fetchall()
    runs = [r for r in runs if not args.run or r[0] in args.run]
    total = changed = 0
    for run_id, task_name, split, variant in runs:
        task = get_task(task_name)
        by_id = {s.id: s for s in load_split(task_name, split, resolve_data_dir()).samples}
        rows = con.execute("SELECT sample_id, output, correct, detail FROM samples WHERE run_id=? ORDER BY idx",
                           [run_id]).fetchall()
        samples = [by_id[r[0]] for r in rows]
        new = task.score_many(samples, [r[1] for r in rows])
        diffs = [(r, n) for r, n in zip(rows, new, strict=True) if bool(r[2]) != n.correct]
        total += len(rows)
        changed += len(diffs)
        print(f"{task_name}/{split} {variant} run {run_id}: {len(rows)} outputs, stored {sum(bool(r[2]) for r in rows)} "
              f"passed, now {sum(n.correct for n in new)} passed, {len(diffs)} changed")
        for r, n in diffs:
            print(f"  {r[0]}: {'pass' if r[2] else 'fail'} -> {'pass' if n.correct else 'fail'}; "
                  f"stored: {r[3]!r}; now: {n.parsed} {n.detail!r}")
    print(f"{total} outputs re-judged, {changed} verdicts changed")


if __name__ == "__main__":
    main()
