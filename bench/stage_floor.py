"""What one training stage leaves held in its process, and where that memory is (issue 43).

In `make run` every stage runs in the flow's process, so each stage's peak is the floor it finds plus its own
share (`peak_floor_host_mb`, `peak_host_mb`: t2core/memory.py). This runs one REINFORCE stage the way the flow
does (the model from flows.runtime, the operation t2ops.training runs), then hands freed memory back as the
flow does before the next stage (t2core.memory.release_freed) and prints, before and after: the resident set
split into anonymous and file-backed pages (the weights and the SVD factors are file-backed: safetensors are
mapped), the live CPU tensors (found through the garbage collector), and glibc's arenas (in use / free).
The difference between the resident set and the live tensors is memory held by something else.

    T2_HOME=<scratch> python bench/stage_floor.py --task arc_easy_cloze --steps 6 --valid-limit 40 [--thread]

`--thread` runs the stage on a worker thread, as Prefect's task runner does (another malloc arena).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def resident() -> dict[str, float]:
    """GB of the process's resident set, its peak since start, and its anonymous and file-backed parts."""
    from t2core.memory import status_mb

    return {k: status_mb(k) * 1024 / 1e6 for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]


def arenas() -> dict[str, float]:
    """glibc's heap (GB): bytes in its arenas, in use, free in them, and in chunks of their own mapping."""
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        return {}
    libc.mallinfo2.restype = _MallInfo2
    m = libc.mallinfo2()
    return {"arena": m.arena / 1e9, "in use": m.uordblks / 1e9, "free": m.fordblks / 1e9, "mapped": m.hblkhd / 1e9}


def live_cpu_tensors() -> float:
    """GB of the distinct CPU storages of the tensors the garbage collector can reach."""
    import torch

    seen: set[int] = set()
    total = 0
    for o in gc.get_objects():
        if isinstance(o, torch.Tensor):
            try:
                if o.device.type != "cpu":
                    continue
                st = o.untyped_storage()
            except (RuntimeError, NotImplementedError):
                continue
            if st.data_ptr() not in seen:
                seen.add(st.data_ptr())
                total += st.nbytes()
    return total / 1e9


def show(label: str) -> None:
    r = resident()
    print(f"{label:34s} rss {r['VmRSS']:5.2f} (anon {r['RssAnon']:5.2f}, file {r['RssFile']:5.2f}), "
          f"peak {r['VmHWM']:5.2f}; live CPU tensors {live_cpu_tensors():5.2f}; "
          + ", ".join(f"{k} {v:5.2f}" for k, v in arenas().items()) + "  (GB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smol")
    ap.add_argument("--task", default="arc_easy_cloze")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--valid-limit", type=int, default=40)
    ap.add_argument("--thread", action="store_true", help="run the stage on a worker thread (as Prefect does)")
    a = ap.parse_args()

    from flows.runtime import get_model
    from flows.stages import load_model_step
    from t2core.memory import release_freed
    from t2core.profiles import get_profile
    from t2core.svf.placement import resident_svd
    from t2ops import training
    from t2ops.operation import Hooks

    prof = get_profile(a.profile)
    show("imports")
    loaded = get_model(prof.model, prof.seed_or_default(None), prof.resolved_factor_dtype())
    release_freed()
    show("model loaded")
    rl = prof.rl_config(a.task, prof.seed_or_default(None))
    resident_svd(loaded, rl.svf.targets)
    release_freed()
    show("SVD factors resident")
    rl = dataclasses.replace(rl, steps=a.steps, valid_every=max(a.steps, 1), valid_limit=a.valid_limit)
    req = training.TrainRequest(rl, prof.sampler, None)
    plan = training.OP.plan(req, load_model_step.fn(prof.model, prof.seed_or_default(None), prof.resolved_factor_dtype()))
    t0 = time.perf_counter()
    if a.thread:
        with ThreadPoolExecutor(1) as ex:
            out = ex.submit(training.OP.run, plan, loaded, {}, Hooks()).result()
    else:
        out = training.OP.run(plan, loaded, {}, Hooks())
    print(f"stage ran {time.perf_counter() - t0:.0f} s: train:{a.task}, {a.steps} steps, validation of "
          f"{a.valid_limit}")
    show("after the stage")
    del out
    release_freed()
    show("after release_freed (next stage's floor)")


if __name__ == "__main__":
    main()
