"""Benchmark: the Dask runner against the in-process one, on the tiny model, printed side by side.

1. overhead per stage: 8 tiny evaluations (2 items each) run as flow stages, in-process and on a
   1-worker LocalCluster, seconds per stage and the ratio dask / local;
2. placement: 16 independent stages whose cost is a sleep (0.5 s each), on 1, 2 and 4 workers: the wall
   time and the speed-up over 1 worker (2 cores cannot show it for compute; placement scales where the
   work does);
3. the flow process's peak memory (max RSS) in each configuration, and its ratio to the local run.

Each configuration runs in a fresh process with its own T2_HOME and Prefect home; before the clock
starts, 2 short stages per worker make every worker import t2 and load the model.

    python bench/scaleout.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SleepPlan:
    run_id: str
    seconds: float
    row = None
    outputs = ()


class SleepOp:
    """A stage whose cost is a sleep: nothing to record, never done, so it runs every time."""

    name = "sleep"

    def plan(self, req, ident):
        return SleepPlan(f"sleep-{req[0]}", req[1])

    def needs(self, plan):
        return {}

    def size(self, plan):
        return None

    def done(self, plan, recorded):
        return None

    def run(self, plan, loaded, deps, hooks):
        from t2ops.operation import Produced

        time.sleep(plan.seconds)
        return Produced(plan.run_id)


def inner(kind: str, runner: str, workers: int) -> None:
    import resource

    from prefect import flow

    from flows.runners import dask_task_runner
    from flows.stages import Stages, load_model_step
    from t2core.evaluate import EvalConfig
    from t2core.sampling import GenerationConfig
    from t2ops import evaluation

    flow(lambda: None, name="warm-up")()  # the ephemeral Prefect server starts outside the timings

    @flow(name=f"bench-{kind}")
    def body(concurrent: bool) -> float:
        S = Stages(concurrent=concurrent)
        ident = load_model_step("tiny-random", 0)
        warm = [S.submit(f"warm-up:{i}", SleepOp(), ident, (f"w{i}", 0.3)) for i in range(2 * workers)]
        for stage in warm:  # every worker has imported t2 and loaded the model before the clock starts
            S.outcome(stage)
        t0 = time.perf_counter()
        if kind == "eval":
            for i in range(8):
                ev = EvalConfig("arc_easy_cloze", limit=2, generation=GenerationConfig(seed=i, batch_size=2))
                S.submit(f"eval:{i}", evaluation.OP, ident, evaluation.EvalRequest(ev, None, "hf"))
        else:
            for i in range(16):
                S.submit(f"sleep:{i}", SleepOp(), ident, (i, 0.5))
        for stage in S.by_run.values():
            S.outcome(stage)
        return time.perf_counter() - t0

    run = body if runner == "local" else body.with_options(task_runner=dask_task_runner(None, workers))
    wall = run(runner != "local")
    print("RESULT " + json.dumps({"wall": wall, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _measure(kind: str, runner: str, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "T2_HOME": home, "PREFECT_HOME": str(Path(home) / "prefect"),
               "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONPATH": str(REPO),
               "T2_DATA_DIR": os.environ.get("T2_DATA_DIR") or str(REPO.parent / "shared" / "datasets")}
        p = subprocess.run([sys.executable, __file__, "--inner", kind, runner, str(workers)], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=900)
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{kind} {runner} {workers}: no result\n{p.stderr[-3000:]}")
        return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inner", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        return inner(a.inner[0], a.inner[1], int(a.inner[2]))
    local, dask1 = _measure("eval", "local", 1), _measure("eval", "dask", 1)
    print("1. overhead per stage (8 tiny evaluations)")
    print(f"   local {local['wall'] / 8:.2f} s/stage   dask (1 worker) {dask1['wall'] / 8:.2f} s/stage   "
          f"ratio dask/local {dask1['wall'] / local['wall']:.2f}")
    sleeps = {n: _measure("sleep", "dask", n) for n in (1, 2, 4)}
    sleeps_local = _measure("sleep", "local", 1)
    print("2. placement (16 stages of 0.5 s sleep)")
    print(f"   local {sleeps_local['wall']:.1f} s   " + "   ".join(
        f"{n} worker{'s' if n > 1 else ''} {r['wall']:.1f} s (x{sleeps[1]['wall'] / r['wall']:.2f})"
        for n, r in sleeps.items()))
    print("3. the flow process's peak memory (max RSS)")
    base = local["maxrss_mb"]
    print(f"   local {base:.0f} MB   dask (1 worker) {dask1['maxrss_mb']:.0f} MB (x{dask1['maxrss_mb'] / base:.2f})   "
          + "   ".join(f"sleep {n}w {r['maxrss_mb']:.0f} MB (x{r['maxrss_mb'] / base:.2f})" for n, r in sleeps.items()))


if __name__ == "__main__":
    main()
