"""Run untrusted generated code against tests in a subprocess sandbox.

Defences, layered because model output is untrusted (MBPP/HumanEval rewards, paper §4):
- a fresh temp working directory, removed afterwards; `python -I -S` with an empty environment;
- rlimits: address space (memory), CPU seconds, file size, open files; a wall-clock timeout
  that kills the whole process group (so children and infinite loops die too);
- an audit hook (PEP 578) installed before the code runs that refuses writes, deletes and
  renames outside the working dir, process creation, signals, sockets and ctypes;
- when run as root and `nobody` can execute the interpreter, privileges are dropped to `nobody`
  so the OS refuses writes elsewhere too (otherwise the audit hook is the file-system barrier).
A run passes only if the harness prints a per-run nonce after every test ran, so a
`sys.exit(0)` or an `os._exit` in generated code cannot fake success.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

_GUARD = textwrap.dedent(
    r'''
    import os, sys
    _ROOT = os.path.realpath(os.getcwd())
    _W = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    def _inside(p):
        try:
            p = os.fsdecode(p) if not isinstance(p, int) else None
        except Exception:
            return False
        if p is None:
            return True
        rp = os.path.realpath(p)
        return rp == _ROOT or rp.startswith(_ROOT + os.sep) or rp == os.devnull
    _PATH_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                    "os.utime", "shutil.rmtree", "shutil.move", "os.link", "os.symlink"}
    _DENY = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
             "os.forkpty", "os.kill", "os.killpg", "socket.connect", "socket.bind", "socket.sendto",
             "socket.getaddrinfo", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.startfile",
             "pty.spawn", "os.setuid", "os.chroot", "sys.setprofile", "sys.settrace", "os.putenv"}
    def _hook(event, args):
        if event in _DENY or event.startswith("ctypes."):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _W)
            if writing and not _inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working dir is not allowed")
        elif event in _PATH_EVENTS or event in ("os.rename", "os.replace"):
            for a in args[:2]:
                if isinstance(a, (str, bytes, os.PathLike)) and not _inside(a):
                    raise PermissionError(f"sandbox: {event} on {a!r} outside the working dir is not allowed")
    sys.addaudithook(_hook)
    '''
)

_HARNESS = _GUARD + textwrap.dedent(
    r'''
    _nonce = sys.stdin.readline().strip()
    _src = open("program.py").read()
    _g = {"__name__": "__sandbox__"}
    exec(compile(_src, "program.py", "exec"), _g)
    sys.stdout.flush()
    os.write(1, ("\n" + _nonce + "\n").encode())
    '''
)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock
    memory_mb: int = 1024  # address space
    cpu_s: int = 10
    file_mb: int = 16  # largest file the code may write

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_mb < 64 or self.cpu_s <= 0 or self.file_mb <= 0:
            raise ValueError(f"invalid sandbox limits {self}: timeout/cpu/file must be > 0 and memory >= 64 MB")


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error"
    detail: str  # tail of stderr, or the reason


@functools.lru_cache(maxsize=1)
def _nobody() -> tuple[int, int] | None:
    """uid/gid of `nobody` when we are root and `nobody` can run this interpreter, else None."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None

    def drop() -> None:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    try:
        ok = subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], preexec_fn=drop, cwd="/",
                            capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (pw.pw_uid, pw.pw_gid) if ok else None


def _preexec(limits: SandboxLimits, drop_to: tuple[int, int] | None):
    def apply() -> None:
        import resource

        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        fsz = limits.file_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsz, fsz))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop_to is not None:  # drop root: the OS then refuses writes outside the (chowned) work dir
            os.setgroups([])
            os.setgid(drop_to[1])
            os.setuid(drop_to[0])

    return apply


def run_code(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Execute `program` (solution + tests) in the sandbox; passed iff it ran to the end."""
    limits = limits or SandboxLimits()
    nonce = secrets.token_hex(16)
    work = Path(tempfile.mkdtemp(prefix="t2-sandbox-"))
    try:
        (work / "program.py").write_text(program)
        (work / "harness.py").write_text(_HARNESS)
        drop_to = _nobody()
        if drop_to is not None:
            for p in (work, work / "program.py", work / "harness.py"):
                os.chown(p, *drop_to)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "harness.py"],
            cwd=work,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "HOME": str(work), "TMPDIR": str(work)},
            preexec_fn=_preexec(limits, drop_to),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate((nonce + "\n").encode(), timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return SandboxResult(False, "timeout", f"killed after {limits.timeout_s:.1f}s wall clock")
        finally:
            _kill_group(proc)  # stray children of the process group
        stdout = out.decode(errors="replace")
        stderr = err.decode(errors="replace")
        if proc.returncode == 0 and stdout.rstrip().endswith(nonce):
            return SandboxResult(True, "passed", "")
        if proc.returncode is not None and proc.returncode < 0:
            sig = signal.Signals(-proc.returncode).name
            return SandboxResult(False, "error", f"killed by {sig} (resource limit?)")
        tail = stderr.strip().splitlines()[-1:] or ["exited before finishing the tests"]
        return SandboxResult(False, "failed", tail[0][-300:])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
