"""A `t2` command's children end with it (issue 19): SIGTERM and SIGINT stop what the command started.

Why: Python's default SIGTERM ends the process without running `finally` blocks or `atexit`, so the
temporary Prefect server that `t2 run` starts (a uvicorn subprocess), a vLLM server or sandbox
children outlived it. `install()` makes SIGTERM raise `SystemExit` (and SIGINT `KeyboardInterrupt`, as
before), so every cleanup runs, and registers a last `atexit` sweep that terminates, then kills,
whatever descendants are still there.

An exception raised by a signal can land anywhere, a `__del__` included, where Python prints
"Exception ignored" and carries on (seen: a SIGINT swallowed in a regex finaliser while the flow ran
on). And while a flow runs, Prefect's engine swaps in its own SIGTERM handler (it raises
`TerminationSignal`, which a task's engine may turn into a failed task: seen in CI as a SIGTERM after
which the flow ran to the end and exited 0). So whichever Python handler is installed, the signal is
also seen at the C level: `signal.set_wakeup_fd` makes the interpreter write every caught signal's
number to a pipe, which a thread reads. The first signal it reads arms a watchdog: if the process still
runs `UNWIND_S` later, it sweeps the descendants and exits with 128 + the signal. A second signal does
that at once. SIGKILL cannot be caught: the vLLM server's parent watchdog and bubblewrap's
--die-with-parent cover it.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time

GRACE_S = 5.0  # what a child gets between SIGTERM and SIGKILL
UNWIND_S = 15.0  # what the command gets to unwind after the first signal
_INSTALLED = False
_SIGNALLED = 0  # the first signal received (0: none)
_SEEN = 0  # signals the watcher thread has counted
_FIRST_AT = 0.0  # when it counted the first
REPEAT_S = 0.25  # a repeat sooner than this is the same request (see `_note`)
_LOCK = threading.Lock()
_WATCHED = (signal.SIGTERM, signal.SIGINT)


def _force_exit(signum: int) -> None:
    reap(grace_s=2.0)
    os._exit(128 + signum)


def _at_exit() -> None:
    """The last exit handler: sweep the descendants; after a signal, exit with its status even if the
    exception it raised was swallowed and the command ran on to a normal end."""
    reap()
    if _SIGNALLED:
        os._exit(128 + _SIGNALLED)


def _note(signum: int) -> None:
    """Count one delivered signal: the first arms the watchdog, the second ends the process now.

    A repeat within `REPEAT_S` of the first is not a second request: Prefect's engine, after its own
    handler ran, restores the previous one (t2's) and sends the same signal to itself at once."""
    global _SIGNALLED, _SEEN, _FIRST_AT
    now = time.monotonic()
    with _LOCK:
        if _SEEN == 1 and now - _FIRST_AT < REPEAT_S:
            return
        _SEEN += 1
        first, second = _SEEN == 1, _SEEN == 2
        if first:
            _SIGNALLED, _FIRST_AT = signum, now
    if first:
        timer = threading.Timer(UNWIND_S, _force_exit, args=(signum,))
        timer.daemon = True
        timer.start()
    elif second:
        _force_exit(signum)


def _watch(fd: int) -> None:
    """The wakeup pipe's reader: each byte is the number of a signal the interpreter caught."""
    while True:
        try:
            data = os.read(fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in _WATCHED:
                _note(signum)


def _on_signal(signum, frame) -> None:
    """t2's own handler: unwind (`finally` blocks and atexit run); the watcher thread counts the signal."""
    global _SIGNALLED
    with _LOCK:
        _SIGNALLED = _SIGNALLED or signum  # before the exception, so `_at_exit` sees it however it unwinds
    if signum == signal.SIGINT:
        raise KeyboardInterrupt("stopped by SIGINT (Ctrl-C)")
    raise Stopped(signum)


class Stopped(SystemExit):
    """SIGTERM (or another watched signal) as an exit with status 128 + signum, whose text names the signal:
    the run it interrupts is recorded `failed` with that reason (`t2 catalog ls runs` shows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


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
    r, w = os.pipe()
    os.set_blocking(w, False)  # the interpreter's C handler must never block on it
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(r,), name="t2-signal-watch", daemon=True).start()
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the parent ignores SIGINT
        signal.signal(signal.SIGINT, _on_signal)
