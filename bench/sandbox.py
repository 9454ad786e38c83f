"""Benchmark: cost of judging one program, the OS-isolated two-process sandbox against the old path.

The old path is the in-process-hook sandbox that t2 shipped before the OS sandbox (one
interpreter, an audit hook, a pass nonce; read from git history at `--old-rev`, run only here
for timing: it is not safe). Both judge the same trivially correct MBPP-style solution, in one
run, side by side:

- `one`: wall time of a single judgement (median of `--repeats`), i.e. the per-candidate overhead;
- `serial`: `--n` judgements in a row, per second;
- `parallel`: the same `--n` through `run_many` with one worker per core (new path only: the old
  one judged one at a time).

    python bench/sandbox.py --n 50 --repeats 20
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-5, 5) == 0\nassert add(10, 20) == 30"


def load_old(rev: str):
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:t2core/sandbox.py"], capture_output=True,
                         text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="t2-old-sandbox-")) / "old_sandbox.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_sandbox", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_sandbox"] = mod
    spec.loader.exec_module(mod)
    return mod


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        assert fn(), "a correct program did not pass"
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="judgements in a row")
    ap.add_argument("--repeats", type=int, default=20, help="single judgements for the median")
    ap.add_argument("--old-rev", default="b95e5fe", help="git revision with the old t2core/sandbox.py")
    args = ap.parse_args()

    from t2core.sandbox import TestSpec, isolation, run_many, run_tests

    old = load_old(args.old_rev)
    iso = isolation()
    spec = TestSpec(TESTS)
    paths = {
        "old (in-process hook)": lambda: old.run_code(PROGRAM + "\n" + TESTS).passed,
        f"new ({iso.mode})": lambda: run_tests(PROGRAM, spec, iso=iso).passed,
    }
    rows = []
    for name, fn in paths.items():
        fn()  # warm-up (probes, imports)
        one = statistics.median(timed(fn, 1) for _ in range(args.repeats))
        serial = args.n / timed(fn, args.n)
        rows.append([name, one * 1000, serial, None])
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    res = run_many([(PROGRAM, spec)] * args.n, workers=workers)
    assert all(r.passed for r in res)
    rows[1][3] = args.n / (time.perf_counter() - t0)

    base = rows[0]
    print(f"{os.cpu_count()} cores; {args.n} judgements in a row, median of {args.repeats} single ones\n")
    print(f"| path | one judgement ms | x old | serial /s | x old | parallel ({workers} workers) /s |")
    print("|---|---|---|---|---|---|")
    for name, one, serial, par in rows:
        print(f"| {name} | {one:.1f} | {one / base[1]:.2f} | {serial:.1f} | {serial / base[2]:.2f} | "
              f"{'' if par is None else f'{par:.1f}'} |")


if __name__ == "__main__":
    main()
