"""One judgement: a candidate program against trusted tests, in two sandboxes (caller side).

The caller starts the judge and the candidate (`inside.py`) as two isolated processes joined by
two pipes, writes the tests to the judge and the program to the candidate, and reads the
verdict from a third pipe that only the judge holds. It never blocks without a deadline:
everything is read through one selector loop bounded by the wall-clock limit, output beyond
`output_kb` per process is read and discarded, and at the end both sandboxes are killed (their
PID namespaces take every descendant with them), reaped with a timeout, and every descriptor is
closed, whatever happened. Then what the sandbox left on the host is given back: its memory
cgroup's memory is reclaimed before the cgroup is removed, and the unix-socket cycles it left are
collected (`leftovers`).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import re
import selectors
import signal
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from t2core.safe_text import printable
from t2core.sandbox import leftovers, syscalls
from t2core.sandbox.isolate import Isolation, SandboxLimits, isolation, sandbox_cgroup
from t2core.sandbox.wire import MAX_FRAME, WireError, decode, encode

GRACE_S = 1.0  # after the kill: how long to wait for the pipes to close
REAP_S = 10.0  # ... and for bubblewrap to report every process of the sandbox gone (a fork bomb takes a while)
VERDICT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class TestSpec:
    """Trusted test code for one problem.

    `setup` runs first in the judge (imports, HumanEval's prompt with its helpers), then `tests`.
    The tests take from the candidate's program the `names` (the function under test; these win
    over the setup's and builtins' bindings) and every other name they read that neither they,
    the setup nor builtins define.
    """

    __test__ = False  # not a pytest class

    tests: str
    setup: str = ""
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error" | "unjudgeable"
    detail: str  # why it did not pass: the candidate's text, made printable (`t2core.safe_text`), <= 500


class _Proc:
    """One sandboxed process with its bounded stdout/stderr capture."""

    def __init__(self, iso: Isolation, argv: list[str], limits: SandboxLimits, pass_fds: tuple[int, ...],
                 stdin_data: bytes, binds: tuple[tuple[str, str], ...] = ()) -> None:
        self.cgroup = sandbox_cgroup(limits)  # OSError: the judgement is an "error", nothing started
        self.note = ""  # what the cgroups refused it, read once it is reaped
        self.info_r, info_w = _pipe() if iso.isolated else (-1, -1)
        ours = [info_w] if iso.isolated else []  # closed once bubblewrap has them
        try:
            if iso.filtered:
                ours.append(syscalls.pipe())
            cmd = iso.command(argv, limits, info_w if iso.isolated else None, binds,
                              ours[1] if iso.filtered else None)

            def start(cmd: list[str]) -> subprocess.Popen:
                return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        pass_fds=pass_fds + tuple(ours), start_new_session=True,
                                        env={"PATH": "/usr/bin:/bin"})
            self.popen = start(cmd) if self.cgroup is None else self.cgroup.launch(cmd, start)
        except OSError:
            if iso.isolated:
                os.close(self.info_r)
            if self.cgroup is not None:
                self.cgroup.remove()
            raise
        finally:
            for fd in ours:
                os.close(fd)
        self.stdin_data = memoryview(stdin_data)
        self.out = bytearray()
        self.info = bytearray()
        self.cap = limits.output_kb * 1024
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            os.set_blocking(f.fileno(), False)
        if self.info_r >= 0:
            os.set_blocking(self.info_r, False)

    def sandbox_pid(self) -> int | None:
        """The first process of the sandbox's PID namespace, as bubblewrap reported it."""
        if self.info_r >= 0 and b"child-pid" not in self.info:  # not read by the loop yet
            with contextlib.suppress(BlockingIOError, OSError):
                self.info += os.read(self.info_r, 4096)
        m = re.search(rb'"child-pid"\s*:\s*(\d+)', bytes(self.info))
        return int(m.group(1)) if m else None

    def keep(self, data: bytes) -> None:
        room = self.cap - len(self.out)
        if room > 0:
            self.out += data[:room]

    def kill(self) -> None:
        """Kill the sandbox: its PID namespace's first process (the kernel then kills the rest, and
        bubblewrap exits once they are gone), else bubblewrap's process group (unsafe mode)."""
        pid = self.sandbox_pid()
        if pid is not None and self.popen.poll() is None:  # not yet reaped by bubblewrap: still ours
            _signal(pid, lambda: os.kill(pid, signal.SIGKILL))
        else:
            _signal(self.popen.pid, lambda: os.killpg(self.popen.pid, signal.SIGKILL))

    def reap(self) -> None:
        try:
            self.popen.wait(timeout=REAP_S)
        except subprocess.TimeoutExpired:
            _signal(self.popen.pid, lambda: os.killpg(self.popen.pid, signal.SIGKILL))
            try:
                self.popen.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            try:
                f.close()
            except OSError:
                pass
        if self.info_r >= 0:
            os.close(self.info_r)
            self.info_r = -1
        leftovers.collect_unix_socket_cycles()
        if self.cgroup is not None:  # reaped: reclaimed and removed now, or by a later judgement once its teardown ends
            self.note = self.cgroup.events()
            self.cgroup.remove()
            self.cgroup = None


def _signal(pid: int, send) -> None:
    try:
        send()
    except (ProcessLookupError, PermissionError):
        pass


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()  # O_CLOEXEC: only pass_fds reach a child
    return r, w


def run_tests(program: str, spec: TestSpec, limits: SandboxLimits | None = None,
              iso: Isolation | None = None) -> SandboxResult:
    """Judge `program` against `spec` (both sandboxed); passed only on the judge's own verdict."""
    limits = limits or SandboxLimits()
    iso = iso or isolation()
    deadline = time.monotonic() + limits.timeout_s
    req_r, req_w = _pipe()
    rep_r, rep_w = _pipe()
    ver_r, ver_w = _pipe()
    ours = [req_r, req_w, rep_r, rep_w, ver_w]
    procs: list[_Proc] = []
    verdict = bytearray()
    sel = selectors.DefaultSelector()
    try:
        judge_in = encode((spec.setup, spec.tests, program_names(spec)))
        procs.append(_Proc(iso, iso.python(["judge", str(req_w), str(rep_r), str(ver_w)]), limits,
                           (req_w, rep_r, ver_w), judge_in))
        procs.append(_Proc(iso, iso.python(["candidate", str(req_r), str(rep_w)]), limits,
                           (req_r, rep_w), program.encode("utf-8", errors="surrogatepass")))
        for fd in ours:  # the children hold their ends now; ours would keep EOF from ever coming
            os.close(fd)
        ours.clear()
        os.set_blocking(ver_r, False)
        sel.register(ver_r, selectors.EVENT_READ, ("verdict", None))
        for p in procs:
            watch(sel, p)
        verdict_done = _pump(sel, verdict, deadline)
    except OSError as e:
        return SandboxResult(False, "error", f"could not start the sandbox: {e}")
    finally:
        for p in procs:
            p.kill()
        _drain(sel, time.monotonic() + GRACE_S)
        sel.close()
        for p in procs:
            p.reap()
            p.close()
        for fd in ours + [ver_r]:
            try:
                os.close(fd)
            except OSError:
                pass
    res = (_verdict(bytes(verdict), procs) if verdict_done
           else SandboxResult(False, "timeout", f"no verdict after {limits.timeout_s:.1f}s wall clock"))
    notes = "; ".join(f"{who}: {p.note}" for who, p in zip(("judge", "candidate"), procs, strict=False) if p.note)
    if notes and not res.passed:
        return SandboxResult(False, res.status, printable(f"{res.detail} ({notes})", 500))
    return res


def watch(sel: selectors.BaseSelector, p: _Proc) -> None:
    """Register a sandboxed process's pipes with the selector `_pump` reads: its stdin to feed, its
    outputs to capture (bounded), bubblewrap's info pipe for the sandbox's pid."""
    if p.info_r >= 0:
        sel.register(p.info_r, selectors.EVENT_READ, ("info", p))
    sel.register(p.popen.stdin, selectors.EVENT_WRITE, ("stdin", p))
    sel.register(p.popen.stdout, selectors.EVENT_READ, ("out", p))
    sel.register(p.popen.stderr, selectors.EVENT_READ, ("out", p))


def _pump(sel: selectors.BaseSelector, verdict: bytearray, deadline: float) -> bool:
    """Feed stdins, capture outputs, collect the verdict; True once the verdict pipe closed."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        for key, _ in sel.select(timeout=min(left, 0.5)):
            what, p = key.data
            if what == "stdin":
                try:
                    n = os.write(key.fd, p.stdin_data[:65536])
                except (BrokenPipeError, BlockingIOError) as e:
                    n = 0 if isinstance(e, BlockingIOError) else len(p.stdin_data)
                p.stdin_data = p.stdin_data[n:]
                if not p.stdin_data:
                    sel.unregister(key.fileobj)
                    p.popen.stdin.close()
                continue
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if what == "verdict":
                if not data:
                    sel.unregister(key.fileobj)
                    return True
                if len(verdict) < VERDICT_LIMIT:
                    verdict += data
                if len(verdict) >= 4 and len(verdict) >= 4 + struct.unpack(">I", verdict[:4])[0]:
                    return True  # a whole frame: no need to wait for the sandbox to wind down
            elif what == "info":
                if data and len(p.info) < 4096:
                    p.info += data
                elif not data:
                    sel.unregister(key.fileobj)
            elif data:
                p.keep(data)
            else:
                sel.unregister(key.fileobj)


def _drain(sel: selectors.BaseSelector, until: float) -> None:
    """After the kill: read what is left (discarding it) until every pipe closed or `until`."""
    while sel.get_map() and time.monotonic() < until:
        for key, _ in sel.select(timeout=max(0.0, min(0.1, until - time.monotonic()))):
            if key.data[0] == "stdin":
                sel.unregister(key.fileobj)
                continue
            try:
                data = os.read(key.fd, 65536)
                if key.data[0] == "info" and len(key.data[1].info) < 4096:
                    key.data[1].info += data
                if not data:
                    sel.unregister(key.fileobj)
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(key.fileobj)


def _verdict(raw: bytes, procs: list[_Proc]) -> SandboxResult:
    msg = None
    if len(raw) >= 4:
        (n,) = struct.unpack(">I", raw[:4])
        if n <= MAX_FRAME and len(raw) == 4 + n:
            try:
                msg = decode(raw[4:])
            except WireError:
                msg = None
    if (type(msg) is not tuple or len(msg) != 2 or msg[0] not in ("passed", "failed", "unjudgeable")
            or type(msg[1]) is not str):
        tail = procs[0].out.decode(errors="replace").strip().splitlines()[-1:] if procs else []
        return SandboxResult(False, "error", "the judge ended without a verdict"
                             + (f": {printable(tail[0][-300:], 300)}" if tail else ""))
    return SandboxResult(msg[0] == "passed", msg[0], printable(msg[1], 500))


def program_names(spec: TestSpec) -> tuple[str, ...]:
    """The names the tests take from the candidate's program: `spec.names`, then every name the
    tests read that neither they, the setup nor builtins bind (a program's helper, or the module it
    imported). Worked out here, from trusted text, so the judge needs no `ast` (30 ms a process).

    A name that shadows a builtin (MBPP 126 asks for a function called `sum`) comes from the
    program only when the trusted side names it: a program that also defines `set` or `len`
    must not decide what the asserts compute."""
    try:
        tests, setup = ast.parse(spec.tests), ast.parse(spec.setup)
    except SyntaxError:
        return tuple(spec.names)  # the judge reports the syntax error itself
    bound = set()
    for tree in (tests, setup):
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
                bound.add(n.id)
            elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(n.name)
            elif isinstance(n, ast.Import | ast.ImportFrom):
                bound |= {a.asname or a.name.split(".")[0] for a in n.names}
    read = [n.id for n in ast.walk(tests) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    free = [n for n in read if n not in bound and not hasattr(builtins, n)]
    return tuple(dict.fromkeys([*spec.names, *free]))


def run_many(jobs: list[tuple[str, TestSpec]], limits: SandboxLimits | None = None,
             workers: int | None = None) -> list[SandboxResult]:
    """Judge several programs in parallel (RL batches, evaluations); results in order."""
    if not jobs:
        return []
    iso = isolation()  # probe (or refuse) once, before any thread starts
    workers = max(1, min(len(jobs), workers or os.cpu_count() or 1))
    if workers == 1:
        return [run_tests(p, s, limits, iso) for p, s in jobs]
    with ThreadPoolExecutor(workers, thread_name_prefix="t2-sandbox") as pool:
        return list(pool.map(lambda job: run_tests(job[0], job[1], limits, iso), jobs))
