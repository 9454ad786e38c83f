"""A `t2` command's children end with it (issue 19): SIGTERM and SIGINT stop what the command started.

Why: Python's default SIGTERM ends the process without running `finally` blocks or `atexit`, so the
temporary Prefect server that `t2 run` starts (a uvicorn subprocess), a vLLM server or sandbox
children outlived it. `install()` makes SIGTERM raise `SystemExit` (and SIGINT `KeyboardInterrupt`, as
before), so every cleanup runs, and registers a last `atexit` sweep that terminates, then kills,
whatever descendants are still there.

An exception raised by a signal can land anywhere, a `__del__` included, where Python prints
"Exception ignored" and carries on (seen: a SIGINT swallowed in a regex finaliser while the flow ran
on). So the first signal also arms a watchdog: if the process still runs `GRACE_S` later, it sweeps
the descendants and exits with 128 + the signal. A second signal does that at once. SIGKILL cannot be
caught: the vLLM server's parent watchdog and bubblewrap's --die-with-parent cover it.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading

GRACE_S = 5.0  # what a child gets between SIGTERM and SIGKILL
UNWIND_S = 15.0  # what the command gets to unwind after the first signal
_INSTALLED = False
_SIGNALLED = 0  # the first signal received (0: none)


def _force_exit(signum: int) -> None:
    reap(grace_s=2.0)
    os._exit(128 + signum)


def _at_exit() -> None:
    """The last exit handler: sweep the descendants; after a signal, exit with its status even if the
    exception it raised was swallowed and the command ran on to a normal end."""
    reap()
    if _SIGNALLED:
        os._exit(128 + _SIGNALLED)


def _on_signal(signum, frame) -> None:
    global _SIGNALLED
    if _SIGNALLED:  # the second signal: no more unwinding
        _force_exit(signum)
    _SIGNALLED = signum
    timer = threading.Timer(UNWIND_S, _force_exit, args=(signum,))
    timer.daemon = True
    timer.start()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
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
    atexit.register(_at_exit)  # registered first, so it runs last: after Prefect's and the samplers' own stops
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the parent ignores SIGINT
        signal.signal(signal.SIGINT, _on_signal)
