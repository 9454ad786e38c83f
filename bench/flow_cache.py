"""Benchmark: what a fully cached `full-paper` rerun costs per task, this tree vs an earlier commit.

Each side gets its own empty T2_HOME and Prefect home. The flow runs once to fill the caches
(not timed); then a fresh process starts Prefect's ephemeral server (not timed) and runs the
flow `--repeats` times: the first call is a rerun after a crash (the model loads again, every
key is computed cold), the others run in a warm process (the cost is the cache keys and
Prefect's bookkeeping). Every task but load-model is cached in the timed calls. Prints seconds per cached task, side by side,
and the ratio this tree / before.

    python bench/flow_cache.py --before a04b113 --profile tiny
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

DRIVER = r"""
import json, sys, time
from prefect import flow
from flows.pipelines import full_paper_flow
profile, repeats = sys.argv[1], int(sys.argv[2])
flow(lambda: None, name="warm-up")()  # the ephemeral Prefect server starts here, outside the timings
from transformers import LlamaForCausalLM  # noqa: F401 - so does the import of the model code, wherever a tree imports it
times, n = [], 0
for i in range(repeats):
    t0 = time.perf_counter()
    out = full_paper_flow(profile=profile)
    times.append(time.perf_counter() - t0)
    n = len(out["steps"]) + 1  # + load-model
print("RESULT " + json.dumps({"times": times, "tasks": n, "states": sorted({s["state"] for s in out["steps"]})}))
"""


def _run(tree: Path, home: Path, profile: str, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "T2_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # the datasets this checkout finds (a worktree elsewhere would not)
           "T2_DATA_DIR": os.environ.get("T2_DATA_DIR") or str(REPO.parent / "shared" / "datasets")}
    env.pop("PREFECT_API_URL", None)
    p = subprocess.run([sys.executable, "-c", DRIVER, profile, str(repeats)], cwd=tree, env=env, capture_output=True,
                       text=True, timeout=3600)
    if p.returncode:
        raise SystemExit(f"flow failed in {tree}:\n{p.stderr[-3000:]}")
    return json.loads(next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))[7:])


def measure(tree: Path, profile: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="t2bench-") as tmp:
        home = Path(tmp)
        _run(tree, home, profile, 1)  # fill the caches
        warm = _run(tree, home, profile, repeats)  # first call of a process: model load + cold keys
        return {"tasks": warm["tasks"], "states": warm["states"], "cold": warm["times"][0],
                "warm": min(warm["times"][1:]) if repeats > 1 else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="a04b113", help="the commit to compare with")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--repeats", type=int, default=3, help="flow calls in the timed process (the first is cold)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="t2before-") as wt:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", wt, a.before], check=True,
                       capture_output=True)
        try:
            before = measure(Path(wt), a.profile, a.repeats)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", wt], capture_output=True)
    now = measure(REPO, a.profile, a.repeats)
    print(f"profile {a.profile}: {now['tasks']} tasks per flow run (states now {now['states']}, before "
          f"{before['states']})")
    print(f"{'':38s}{'before ' + a.before:>16s}{'this tree':>12s}{'ratio':>8s}")
    for key, what in (("cold", "fresh process (model load + keys), s/task"), ("warm", "same process, s/task")):
        b, n = before[key] / before["tasks"], now[key] / now["tasks"]
        print(f"{what:38s}{b:16.3f}{n:12.3f}{n / b:8.2f}x")


if __name__ == "__main__":
    main()
