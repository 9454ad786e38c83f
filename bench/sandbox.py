"""Benchmark: what the sandbox costs per judgement of a correct program, piece by piece.

Default (issue 41): the cost of the two things a judgement gained, side by side, on the same
correct MBPP-style solution, in one process:
- `now`: the sandbox as t2 runs it;
- `no reclaim`: without giving back what the sandbox left (`t2core.sandbox.leftovers`: the memory
  cgroup's reclaim before removal, the parent folder's budget, the unix-socket collection);
- `no filter`: without the seccomp filter (`Isolation(syscall_filter=False)`);
- `neither`: without both.
Each round judges once in each configuration, in a rotated order, so that a machine whose load
drifts (a 2-core VM shared with a training run) weighs on all four alike; `--rounds` rounds, and
each figure is the median over them. `x neither` is each median over the `neither` one; the
reclaim's cost is `now` over `no reclaim`, the filter's `now` over `no filter` (goal: at most 1.05).

    python bench/sandbox.py --rounds 200

`--against REV` instead compares whole trees, as for issue 20 (docs/sandbox.md, *Cost*):
- `before`: the sandbox as it was at REV (c6b89fb: before issue 20's cgroups, read-only /dev and
  bounded decoding), run from a copy of that revision's `t2core/` in a child interpreter;
- `now, no cgroups`: today's code with `SandboxLimits(cgroups=False)`;
- `now`: today's code as t2 runs it;
- `now, cgroups via sh` (cgroup v1 only): the same, entering the cgroups the way cgroup v2 must, through
  a `sh` that writes its pid into them (the kernel's global threadgroup lock: an RCU grace period).
For each: `one`, the median wall time of a single judgement (`--repeats` of them); `serial`, `--n`
judgements in a row, per second; `parallel`, the same `--n` through `run_many` with one worker per
core; the paths in turn, `--rounds` times, medians over the rounds; ratios against `before`.

    python bench/sandbox.py --against c6b89fb --n 30 --repeats 10 --rounds 5
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
import time
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


PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-5, 5) == 0\nassert add(10, 20) == 30"
CONFIGS = ("now", "no reclaim", "no filter", "neither")


def costs(rounds: int) -> None:
    """Issue 41's table: the reclaim's and the filter's cost per judgement, interleaved in one process."""
    sys.path.insert(0, str(REPO))
    from t2core.sandbox import Isolation, TestSpec, cgroups, isolation, leftovers, run_tests, syscalls

    spec = TestSpec(TESTS)
    mode = isolation().mode
    spent = {"reclaim": 0.0, "filter": 0.0}  # seconds inside each piece's own calls, in `now` judgements

    def timed_call(fn, piece: str):
        def call(*args):
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                spent[piece] += time.perf_counter() - t0
        return call

    kept = tuple(timed_call(f, "reclaim") for f in
                 (leftovers.before_removal, leftovers.after_removal, leftovers.collect_unix_socket_cycles))
    syscalls.pipe = timed_call(syscalls.pipe, "filter")  # the runner calls it once a sandbox

    def off(*_args) -> None:
        return None

    def one(config: str) -> float:
        reclaim = config in ("now", "no filter")
        (leftovers.before_removal, leftovers.after_removal, leftovers.collect_unix_socket_cycles) = (
            kept if reclaim else (off, off, off))
        iso = Isolation(mode, syscall_filter=config in ("now", "no reclaim"))
        t0 = time.perf_counter()
        assert run_tests(PROGRAM, spec, iso=iso).passed, f"a correct program did not pass ({config})"
        return time.perf_counter() - t0

    for config in CONFIGS:  # warm-up: probes, imports, the cgroup parent
        one(config)
    times: dict[str, list[float]] = {c: [] for c in CONFIGS}
    inline_now: list[dict[str, float]] = []  # per `now` judgement: seconds in the reclaim's and the filter's calls
    for r in range(rounds):
        for i in range(len(CONFIGS)):
            config = CONFIGS[(i + r) % len(CONFIGS)]
            if config == "now":
                before = dict(spent)
            times[config].append(one(config))
            if config == "now":
                inline = {k: spent[k] - before[k] for k in spent}
                inline_now.append(inline)
    med = {c: statistics.median(v) for c, v in times.items()}
    h, why = cgroups.hierarchy()
    print(f"{os.cpu_count()} cores; isolation {mode}; cgroups {h.version if h else 'none (' + why + ')'}; "
          f"seccomp filter of {len(syscalls.REFUSED)} calls + sockets; a correct program; {rounds} rounds, "
          "each judging once in every configuration (rotated); medians\n")
    print("| configuration | one judgement ms (median) | x neither | mean ms |")
    print("|---|---|---|---|")
    for c in CONFIGS:
        print(f"| {c} | {med[c] * 1000:.1f} | {med[c] / med['neither']:.3f} | {statistics.mean(times[c]) * 1000:.1f} |")
    print("\nin line, timed inside each `now` judgement (the calls the caller makes for the piece; the filter's")
    print("run time inside the sandbox is not in it), against that judgement's median:")
    for piece in ("reclaim", "filter"):
        ms = statistics.median(j[piece] for j in inline_now) * 1000
        worst = max(j[piece] for j in inline_now) * 1000
        print(f"  {piece}: median {ms:.3f} ms a judgement (max {worst:.2f} ms), "
              f"{ms / (med['now'] * 1000) * 100:.2f}% of a judgement")
    print("\nend to end: each ratio of medians, then the median of the per-round ratios (both judgements of a")
    print("ratio ran in the same round) with its 95% interval (order statistics): the noise of this machine")
    for piece, pairs in (("reclaim", (("now", "no reclaim"), ("no filter", "neither"))),
                         ("filter", (("now", "no filter"), ("no reclaim", "neither")))):
        for a, b in pairs:
            per_round = sorted(x / y for x, y in zip(times[a], times[b], strict=True))
            lo, hi = _median_interval(per_round)
            print(f"  {piece}'s cost, {a} / {b}: {med[a] / med[b]:.3f}; paired {statistics.median(per_round):.3f} "
                  f"({lo:.3f}-{hi:.3f})")
    print("goal (issue 41): at most 1.05 each")


def _median_interval(xs: list[float]) -> tuple[float, float]:
    """A 95% interval for the median of sorted `xs`: the order statistics n/2 -+ 1.96 sqrt(n)/2."""
    n = len(xs)
    half = 0.98 * n ** 0.5
    return xs[max(0, int(n / 2 - half))], xs[min(n - 1, int(n / 2 + half))]


def against(rev: str, n: int, repeats: int, rounds: int) -> None:
    """Issue 20's table: whole trees compared, each path in a child interpreter."""
    sys.path.insert(0, str(REPO))
    from t2core.sandbox import cgroups, isolation

    before = tree_of(rev)
    h, why = cgroups.hierarchy()
    paths = [(f"before ({rev})", before, "default"), ("now, no cgroups", REPO, "off"),
             ("now", REPO, "default")] + ([("now, cgroups via sh", REPO, "sh")] if h and h.version == "v1" else [])
    runs: list[list[list[float]]] = [[] for _ in paths]
    for r in range(rounds):
        for i in range(len(paths)):
            k = (i + r) % len(paths)  # rotate the order, so that no path always runs first
            runs[k].append(timed(paths[k][1], paths[k][2], n, repeats))
    rows = [(name, *(statistics.median(col) for col in zip(*runs[k], strict=True)))
            for k, (name, _, _) in enumerate(paths)]
    print(f"{os.cpu_count()} cores; isolation {isolation().mode}; cgroups "
          f"{h.version if h else 'none (' + why + ')'}; {n} judgements, median of {repeats} single ones; "
          f"medians of {rounds} rounds\n")
    print(f"| path | one judgement ms | x before | serial /s | x before | parallel ({os.cpu_count()} workers) /s "
          "| x before |")
    print("|---|---|---|---|---|---|---|")
    _, b1, bs, bp = rows[0]
    for name, one, serial, par in rows:
        print(f"| {name} | {one * 1000:.1f} | {one / b1:.2f} | {serial:.1f} | {serial / bs:.2f} | {par:.1f} | "
              f"{par / bp:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds of judgements (default 200), or with --against times each path runs (default 3)")
    ap.add_argument("--against", metavar="REV", help="compare whole trees with the sandbox at git revision REV")
    ap.add_argument("--n", type=int, default=50, help="--against: judgements in a row, and in parallel")
    ap.add_argument("--repeats", type=int, default=20, help="--against: single judgements for the median")
    args = ap.parse_args()
    if args.against:
        against(args.against, args.n, args.repeats, args.rounds or 3)
    else:
        costs(args.rounds or 200)


if __name__ == "__main__":
    main()
