"""Benchmark: the threads rule (t2core/threads.py), one process against two that run at once.

Each configuration runs worker processes that do the same fixed amount of model-like work (a small
MLP forward, batch 16, as a decode step does) and prints side by side: the wall time until every worker
is done, the work done per second in all, and that throughput as a ratio to one process alone.

- one process, all the cores' threads (the baseline);
- two processes at once, each with all the cores' threads (what t2 did before: the flow and a vLLM
  server each asked for every core);
- two processes at once, each with its share (`threads.split`: what the rule gives them now).

    python bench/threads.py --units 200 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def worker(units: int, nthreads: int) -> None:
    import torch

    torch.set_num_threads(nthreads)
    torch.manual_seed(0)
    w1, w2 = torch.randn(576, 1536), torch.randn(1536, 576)
    x = torch.randn(16, 576)
    with torch.no_grad():
        for _ in range(20):  # warm-up
            x = torch.nn.functional.layer_norm(torch.relu(x @ w1) @ w2, (576,))
        t0 = time.perf_counter()
        for _ in range(units * 10):
            x = torch.nn.functional.layer_norm(torch.relu(x @ w1) @ w2, (576,))
    print(json.dumps({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))


def run(procs: list[int], units: int) -> float:
    """Wall time for len(procs) workers started together, worker i with procs[i] threads."""
    t0 = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, __file__, "--worker", str(units), str(n)], stdout=subprocess.PIPE,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": str(n)}) for n in procs]
    for p in ps:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed ({p.returncode})")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=200, help="work units per worker (10 MLP steps each)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; each prints its own ratios")
    ap.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from t2core import threads

    cores = threads.budget()
    share = threads.split(cores, 2)
    configs = [("one process", [cores]), (f"two at once, {cores} threads each (oversubscribed)", [cores, cores]),
               (f"two at once, the rule's {share[0]} + {share[1]}", share)]
    print(f"{cores} cores; {args.units} units per worker; throughput = units done per second by all workers")
    print(f"{'configuration':<48} {'round':>5} {'wall s':>8} {'units/s':>8} {'x one':>7}")
    for r in range(1, args.repeats + 1):
        base = None
        for name, procs in configs:
            wall = run(procs, args.units)
            rate = len(procs) * args.units / wall
            base = base or rate
            print(f"{name:<48} {r:>5} {wall:>8.2f} {rate:>8.1f} {rate / base:>7.2f}")


if __name__ == "__main__":
    main()
