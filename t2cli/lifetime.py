"""A `t2` command's children end with it (issue 19): SIGTERM and SIGINT stop what the command started.

Why: Python's default SIGTERM ends the process without running `finally` blocks or `atexit`, so the
temporary Prefect server that `t2 run` starts (a uvicorn subprocess), a vLLM server or sandbox
children outlived it. `install()` turns SIGTERM into `SystemExit` (SIGINT already raises
KeyboardInterrupt), so every cleanup runs, and registers a last `atexit` sweep that terminates, then
kills, whatever descendants are still there. A second signal during cleanup ends the process at once
(the sweep still runs from `atexit`, except on SIGKILL, which no process can catch: the vLLM server's
parent watchdog and bubblewrap's --die-with-parent cover that case).
"""

from __future__ import annotations

import atexit
import os
import signal

GRACE_S = 5.0  # what a child gets between SIGTERM and SIGKILL
_INSTALLED = False


def _on_signal(signum, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
    raise SystemExit(128 + signum)


def reap(grace_s: float = GRACE_S) -> list[int]:
    """Terminate this process's descendants (then kill those still running after `grace_s`); their pids."""
    import psutil

    try:
        kids = psutil.Process(os.getpid()).children(recursive=True)
    except psutil.Error:
        return []
    for p in kids:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(kids, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    return [p.pid for p in kids]


def install() -> None:
    """Once per process, before the command starts anything."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    atexit.register(reap)  # registered first, so it runs last: after Prefect's and the samplers' own stops
    signal.signal(signal.SIGTERM, _on_signal)  # SIGINT already raises KeyboardInterrupt, which unwinds the same way
