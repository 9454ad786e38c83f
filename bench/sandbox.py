"""Benchmark: the cost of judging one program, before and after a change to the sandbox, side by side.

Three paths judge the same correct MBPP-style solution in one run:
- `before`: the sandbox as it was at `--before-rev` (default c6b89fb, before issue 20's cgroups,
  read-only /dev and bounded decoding), run from a copy of that revision's `t2core/` in a child
  interpreter;
- `now, no cgroups`: today's code with `SandboxLimits(cgroups=False)`;
- `now`: today's code as t2 runs it (a memory and a pids cgroup per process where the machine has them);
- `now, cgroups via sh` (cgroup v1 only): the same, entering the cgroups the way cgroup v2 must, through
  a `sh` that writes its pid into them (the kernel's global threadgroup lock: an RCU grace period).

For each: `one`, the median wall time of a single judgement (`--repeats` of them), the
per-candidate overhead; `serial`, `--n` judgements in a row, per second; `parallel`, the same `--n`
through `run_many` with one worker per core. The paths run in turn, `--rounds` times (a noisy
machine drifts), and each figure is the median over the rounds. Ratios are against `before`.
Issue 20's goal: the cgroups cost at most 10% (`now` against `before`).

    python bench/sandbox.py --n 50 --repeats 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# run in a child interpreter whose sys.path starts with the tree to time; prints one JSON line
TIMER = r"""
import json, os, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import t2core.sandbox
from t2core.sandbox import SandboxLimits, TestSpec, run_many, run_tests
assert t2core.sandbox.__file__.startswith(sys.argv[1]), t2core.sandbox.__file__  # the tree asked for
PROGRAM = "def add(a, b):\n    return a + b\n"
spec = TestSpec("assert add(1, 2) == 3\nassert add(-5, 5) == 0\nassert add(10, 20) == 30")
kw = {"cgroups": False} if sys.argv[2] == "off" else {}  # "off": a field older trees do not have
lim = SandboxLimits(**kw)
if sys.argv[2] == "sh":  # enter the cgroups as on cgroup v2, through the `sh` of `Cgroup.wrap`
    from t2core.sandbox import cgroups
    cgroups.Cgroup.launch = lambda self, cmd, start: start(self.wrap(cmd))
n, repeats = int(sys.argv[3]), int(sys.argv[4])
def one():
    t0 = time.perf_counter()
    assert run_tests(PROGRAM, spec, lim).passed, "a correct program did not pass"
    return time.perf_counter() - t0
one()  # warm-up: probes, imports, the cgroup parent
single = statistics.median(one() for _ in range(repeats))
t0 = time.perf_counter()
for _ in range(n):
    one()
serial = n / (time.perf_counter() - t0)
t0 = time.perf_counter()
assert all(r.passed for r in run_many([(PROGRAM, spec)] * n, lim, workers=os.cpu_count()))
parallel = n / (time.perf_counter() - t0)
print(json.dumps([single, serial, parallel]))
"""


def tree_of(rev: str) -> Path:
    """A copy of `rev`'s t2core/ in a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="t2-bench-sandbox-"))
    tar = out / "t2core.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(tar), rev, "t2core"], check=True)
    with tarfile.open(tar) as t:
        t.extractall(out, filter="data")
    return out


def timed(tree: Path, mode: str, n: int, repeats: int) -> list[float]:
    res = subprocess.run([sys.executable, "-c", TIMER, str(tree), mode, str(n), str(repeats)], capture_output=True,
                         text=True, cwd="/")
    if res.returncode != 0:
        raise SystemExit(f"timing {tree} ({mode}) failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="judgements in a row, and in parallel")
    ap.add_argument("--repeats", type=int, default=20, help="single judgements for the median")
    ap.add_argument("--rounds", type=int, default=3, help="times each path runs, in turn; medians are reported")
    ap.add_argument("--before-rev", default="c6b89fb", help="git revision of the sandbox to compare with")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from t2core.sandbox import cgroups, isolation

    before = tree_of(args.before_rev)
    h, why = cgroups.hierarchy()
    paths = [(f"before ({args.before_rev})", before, "default"), ("now, no cgroups", REPO, "off"),
             ("now", REPO, "default")] + ([("now, cgroups via sh", REPO, "sh")] if h and h.version == "v1" else [])
    runs: list[list[list[float]]] = [[] for _ in paths]
    for r in range(args.rounds):
        for i in range(len(paths)):
            k = (i + r) % len(paths)  # rotate the order, so that no path always runs first
            runs[k].append(timed(paths[k][1], paths[k][2], args.n, args.repeats))
    rows = [(name, *(statistics.median(col) for col in zip(*runs[k], strict=True)))
            for k, (name, _, _) in enumerate(paths)]
    print(f"{os.cpu_count()} cores; isolation {isolation().mode}; cgroups "
          f"{h.version if h else 'none (' + why + ')'}; {args.n} judgements, median of {args.repeats} single ones; "
          f"medians of {args.rounds} rounds\n")
    print(f"| path | one judgement ms | x before | serial /s | x before | parallel ({os.cpu_count()} workers) /s "
          "| x before |")
    print("|---|---|---|---|---|---|---|")
    _, b1, bs, bp = rows[0]
    for name, one, serial, par in rows:
        print(f"| {name} | {one * 1000:.1f} | {one / b1:.2f} | {serial:.1f} | {serial / bs:.2f} | {par:.1f} | "
              f"{par / bp:.2f} |")


if __name__ == "__main__":
    main()
