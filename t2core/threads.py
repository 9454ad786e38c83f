"""Threads: the processes t2 runs at once never ask for more threads than there are cores.

Why: three processes with 2 threads each on 2 cores (a flow, a vLLM server, a benchmark) slowed each
other by far more than 3x (issue 19): OpenMP threads that spin-wait for each other lose whole time
slices when they outnumber the cores (`bench/threads.py` measures it). So:

- a process's *budget* is `T2_THREADS` when its parent (or the user) set it, else the cores it may
  run on (`os.sched_getaffinity`);
- a helper process that computes *while* its owner does `claim`s a share of that budget; the owner keeps
  the rest (never below 1) and re-applies its own count;
- a helper that computes only while its owner waits on it (a vLLM server answering synchronous calls)
  takes the cores in turns with it (`claim(..., turns=True)`): both get the whole budget, because only one
  of them runs at a time. Split in halves, each would leave half the machine idle while it works: on 2
  cores a REINFORCE step with vLLM rollouts did its gradient on 1 core while the server slept (issue 23);
- the helper is started with `child_env(share)`: `T2_THREADS`, `OMP_NUM_THREADS`, `MKL_NUM_THREADS`
  and, for vLLM's CPU engine, `VLLM_CPU_OMP_THREADS_BIND` on cores the owner's share does not list.

`configure()` runs once at start (the CLI, the flows' entry points, a helper's main); the count in
force is recorded in every run row (`runs.threads`).
"""

from __future__ import annotations

import os
import threading

ENV = "T2_THREADS"
_HELPERS: dict[str, int] = {}  # helper name -> threads it was given
_LOCK = threading.Lock()


def cores() -> list[int]:
    """The CPU ids this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def budget() -> int:
    """Threads this process and its helpers may use together: `T2_THREADS`, else the cores."""
    given = os.environ.get(ENV, "").strip()
    if given:
        try:
            n = int(given)
        except ValueError:
            n = 0
        if n >= 1:
            return n
        from t2core.errors import ConfigError

        raise ConfigError(f"{ENV}={given!r} must be a whole number >= 1 (the threads t2 may use); unset it to use "
                          "every core.")
    return len(cores())


def split(total: int, parties: int) -> list[int]:
    """`total` threads shared by `parties` processes: each >= 1, their sum <= max(total, parties),
    the first (the owner) getting any remainder. split(2, 2) == [1, 1]; split(16, 3) == [6, 5, 5]."""
    if parties < 1:
        raise ValueError(f"parties={parties} must be >= 1")
    base, extra = divmod(total, parties)
    return [max(1, base + (1 if i < extra else 0)) for i in range(parties)]


def own() -> int:
    """This process's share: its budget less what its running helpers hold (>= 1)."""
    with _LOCK:
        return max(1, budget() - sum(_HELPERS.values()))


def configure() -> int:
    """Apply this process's share to torch and to OpenMP (for the children it starts); returns it."""
    n = own()
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    try:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    except ImportError:  # a helper environment without torch
        pass
    return n


def claim(name: str, parties: int = 2, turns: bool = False) -> int:
    """Reserve a helper's share of the budget (an equal split among `parties` processes: the owner and
    its helpers) and shrink this process's own threads to what is left; returns the helper's share.
    `turns`: the helper runs only while this process waits on it, so it gets the whole budget and this
    process keeps its own."""
    with _LOCK:
        share = budget() if turns else split(budget(), parties)[-1]
        _HELPERS[name] = 0 if turns else share
    configure()
    return share


def release(name: str) -> None:
    """The helper `name` stopped: its threads return to this process."""
    with _LOCK:
        _HELPERS.pop(name, None)
    configure()


def current() -> int:
    """The torch threads in force now (what a run row records)."""
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return own()


def child_env(share: int) -> dict[str, str]:
    """Environment variables that hold a helper process to `share` threads, on the last `share` cores
    (the owner's busiest threads start on the first ones)."""
    ids = cores()[-share:] if share <= len(cores()) else cores()
    return {ENV: str(share), "OMP_NUM_THREADS": str(share), "MKL_NUM_THREADS": str(share),
            "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, ids))}
