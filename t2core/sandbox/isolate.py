"""Operating-system isolation for one sandboxed process (bubblewrap + rlimits).

Why bubblewrap and not `unshare(1)`: both create the namespaces, but bubblewrap also builds the
file-system view the sandbox needs — a fresh root with only read-only binds of /usr and the
interpreter, size-limited tmpfs for the work dir, /tmp and /dev/shm, a minimal /dev — in one
audited setuid-free tool (Flatpak's), and it can forbid further user namespaces
(`--disable-userns`). With `unshare` the same mounts would be a hand-written script.

Each sandboxed process gets:
- its own user: in a user namespace, uid 65534 there; on the host the caller's uid, or, when the
  caller is root, a dedicated unprivileged uid (`T2_SANDBOX_UID`, default 2000000000), so the
  code never runs as root and RLIMIT_NPROC applies;
- its own PID namespace (when its first process ends, the kernel kills every process it
  started, `setsid` daemons included), an empty network namespace, its own IPC and UTS;
- a read-only view of /usr and the Python installation only (no /home, /root, /work, datasets,
  catalog, /proc), a fresh writable work dir and a private /tmp and /dev/shm (tmpfs, size-capped);
- rlimits set by `prlimit(1)` before Python starts: address space, CPU seconds, file size,
  open files, processes, stack, no core dumps, and every other rlimit at the caller's soft value:
  all sixteen soft = hard, so nothing in the sandbox can raise any of them;
- a seccomp filter that refuses the system calls a scored program never needs and that reach past
  the namespaces (ptrace, sockets other than AF_UNIX, keyrings, bpf, the mount family, ...:
  `t2core.sandbox.syscalls`), installed by bubblewrap (`--seccomp`) just before the program starts.

Root needs two layers, because bubblewrap run as root maps the sandbox user to root on the host
and the interpreter usually lives under /root (mode 0700), which no other uid can resolve: an
outer bubblewrap (privileged) builds a view in which the interpreter's directories are
traversable, drops to the dedicated uid with `setpriv(1)`, and the inner, unprivileged
bubblewrap builds the sandbox from that view.

Where none of this works (no bubblewrap, user namespaces disabled, a container without the
privileges, no libseccomp to compile the filter), running generated code is refused (`SandboxUnavailable`) unless the user opts in to
unsandboxed execution with `--unsafe-exec` or `T2_UNSAFE_EXEC=1`: then only the rlimits, a
process group and the two-process judge remain (docs/sandbox.md).
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from t2core.errors import T2Error
from t2core.sandbox import cgroups, syscalls

INSIDE = Path(__file__).with_name("inside.py")
SANDBOX_DIR = "/t2sandbox"  # where inside.py's folder is seen in the sandbox
NS_UID = 65534  # the user inside the user namespace
DEFAULT_HOST_UID = 2_000_000_000  # the dedicated host uid when the caller is root
UNSAFE_ENV = "T2_UNSAFE_EXEC"


class SandboxUnavailable(T2Error):
    """Generated code cannot be isolated here, and unsandboxed execution was not asked for."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed process (each of the judge and the candidate)."""

    timeout_s: float = 10.0  # wall clock of the whole judgement
    memory_mb: int = 1024  # address space per process
    cpu_s: int = 10  # CPU seconds per process
    file_mb: int = 16  # largest file it may write
    tmpfs_mb: int = 32  # size of the work dir, /tmp and /dev/shm each
    nproc: int = 8  # processes (the sandbox's init counts)
    nofile: int = 64  # open files
    stack_mb: int = 8  # the main thread's stack (and a new thread's default), soft = hard like every rlimit
    output_kb: int = 1024  # stdout+stderr kept per process; the rest is read and discarded
    # a memory cgroup of memory_mb (RAM, tmpfs, memfd and kernel memory together) and a pids cgroup of
    # nproc per process, where the machine has them (t2core.sandbox.cgroups); False: rlimits only
    cgroups: bool = True

    def __post_init__(self) -> None:
        if (self.timeout_s <= 0 or self.memory_mb < 64 or self.cpu_s <= 0 or self.file_mb <= 0
                or self.tmpfs_mb <= 0 or self.nproc < 2 or self.nofile < 16 or self.output_kb <= 0
                or self.stack_mb <= 0):
            raise ValueError(f"invalid sandbox limits {self}: timeout/cpu/file/tmpfs/output/stack must be > 0, "
                             "memory >= 64 MB, nproc >= 2, nofile >= 16")


def interpreter() -> str:
    """The base interpreter (not a venv's wrapper): the sandbox runs it with -I -S, stdlib only."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _host_uid() -> int:
    raw = os.environ.get("T2_SANDBOX_UID", str(DEFAULT_HOST_UID))
    try:
        uid = int(raw)
    except ValueError:
        uid = -1
    if not 0 < uid < 2**32 - 1:
        raise SandboxUnavailable(f"T2_SANDBOX_UID={raw!r} is not a non-root uid; unset it or give a number "
                                 "from 1 to 4294967294.")
    return uid


def _ro_bind(path: str, dest: str | None = None) -> list[str]:
    """Bind `path` read-only at `dest` (default: the same place); its new parents 0755 (bwrap would
    copy a 0700 /root)."""
    dest = dest or path
    args: list[str] = []
    for parent in reversed(Path(dest).parents):
        if str(parent) != "/":
            args += ["--perms", "0755", "--dir", str(parent)]
    return args + ["--ro-bind", path, dest]


@functools.lru_cache(maxsize=4)
def _system_binds(inside_dir: str) -> tuple[str, ...]:
    """Read-only binds of /usr and the Python installation, mirroring merged-/usr symlinks.

    Worked out once per process: it is the same for every sandbox (two per judgement)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    if os.path.exists("/etc/ld.so.cache"):
        args += _ro_bind("/etc/ld.so.cache")
    prefix = os.path.realpath(sys.base_prefix)
    if not any(prefix == p or prefix.startswith(p + "/") for p in ("/usr", "/bin", "/lib", "/lib64")):
        args += _ro_bind(prefix)
    py = interpreter()
    if not (py.startswith(prefix + "/") or py.startswith("/usr/")):
        args += _ro_bind(py)
    return (*args, "--ro-bind", inside_dir, SANDBOX_DIR)


# the rlimits SandboxLimits does not set, by prlimit(1)'s option: each at the caller's soft value
# (Python's resource module has no RLIMIT_LOCKS: 10 in Linux's generic numbering, x86-64's and arm64's)
INHERITED = {"data": resource.RLIMIT_DATA, "locks": getattr(resource, "RLIMIT_LOCKS", 10),
             "memlock": resource.RLIMIT_MEMLOCK, "msgqueue": resource.RLIMIT_MSGQUEUE, "nice": resource.RLIMIT_NICE,
             "rss": resource.RLIMIT_RSS, "rtprio": resource.RLIMIT_RTPRIO, "rttime": resource.RLIMIT_RTTIME,
             "sigpending": resource.RLIMIT_SIGPENDING}


@functools.lru_cache(maxsize=1)
def _inherited() -> tuple[str, ...]:
    """prlimit options that set each rlimit of `INHERITED` to the caller's soft value, hard = soft:
    a limit left with its hard value above the soft one can be raised from inside (RLIMIT_STACK's
    hard limit was unlimited until issue 41)."""
    out = []
    for opt, res in INHERITED.items():
        soft = resource.getrlimit(res)[0]
        value = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
        out.append(f"--{opt}={value}:{value}")
    return tuple(out)


def _prlimit(limits: SandboxLimits) -> list[str]:
    """prlimit(1) setting all sixteen rlimits, each soft = hard (one value sets both)."""
    mb = 1024 * 1024
    return ["prlimit", f"--as={limits.memory_mb * mb}", f"--cpu={limits.cpu_s}", f"--fsize={limits.file_mb * mb}",
            f"--nofile={limits.nofile}", f"--nproc={limits.nproc}", "--core=0", f"--stack={limits.stack_mb * mb}",
            *_inherited(), "--"]


@dataclass(frozen=True)
class Isolation:
    """How sandboxed processes are started here: `bwrap` (root or not) or `unsafe` (opted in)."""

    mode: str  # "bwrap-root" | "bwrap-user" | "unsafe"
    reason: str = ""  # why bubblewrap is not used (unsafe mode)
    syscall_filter: bool = True  # bubblewrap modes: the seccomp filter (False only to measure what it does)

    @property
    def filtered(self) -> bool:
        """Whether its sandboxes run under the seccomp filter (`command`'s `seccomp_fd` is then required)."""
        return self.isolated and self.syscall_filter

    @property
    def isolated(self) -> bool:
        return self.mode != "unsafe"

    def command(self, argv: list[str], limits: SandboxLimits, info_fd: int | None = None,
                binds: tuple[tuple[str, str], ...] = (), seccomp_fd: int | None = None) -> list[str]:
        """The command that runs `argv` (an interpreter call) isolated with `limits`.

        `info_fd`: the outermost bubblewrap writes its child's pid there; killing that process
        (the first of the sandbox's PID namespace) takes every process of the sandbox with it,
        and bubblewrap exits only once they are all gone.
        `binds`: further read-only (host path, sandbox path) pairs, e.g. the venv's packages for a
        trusted judging tool that evaluates model text (t2core.sandbox.tool).
        `seccomp_fd`: a pipe holding the compiled filter (`syscalls.pipe()`), read by the innermost
        bubblewrap (the outer layer and `setpriv` pass it on); required when `filtered`."""
        inner_cmd = _prlimit(limits) + argv
        if self.mode == "unsafe":
            return inner_cmd
        if self.filtered and seccomp_fd is None:
            raise ValueError("a filtered sandbox needs the seccomp filter's pipe (syscalls.pipe())")
        info = ["--info-fd", str(info_fd)] if info_fd is not None else []
        seccomp = ["--seccomp", str(seccomp_fd)] if self.filtered else []
        mb = str(limits.tmpfs_mb * 1024 * 1024)
        here = str(INSIDE.parent)
        extra = [a for src, dest in binds for a in _ro_bind(src, dest)]
        inner = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(NS_UID),
                 "--gid", str(NS_UID), "--die-with-parent", "--new-session", *seccomp,
                 *_system_binds(here if self.mode == "bwrap-user" else SANDBOX_DIR),
                 # /dev read-only (bubblewrap's --dev is an uncapped tmpfs; the remount is not recursive, so
                 # /dev/shm, mounted on it first, stays a writable tmpfs of tmpfs_mb)
                 "--dev", "/dev", "--size", mb, "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--size", mb,
                 "--tmpfs", "/tmp", "--size", mb, "--tmpfs", "/work", *extra,  # after the tmpfs they may lie in
                 "--chdir", "/work", "--remount-ro", "/",
                 "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/work",
                 "--setenv", "TMPDIR", "/tmp", "--setenv", "PYTHONHASHSEED", "0", "--", *inner_cmd]
        if self.mode == "bwrap-user":
            return inner[:1] + info + inner[1:]
        uid = str(_host_uid())
        # outer, privileged layer: only a view for the inner bwrap (no network/IPC use, its own PIDs)
        return ["bwrap", *info, "--unshare-pid", "--die-with-parent", *_system_binds(here),
                *[a for src, _ in binds for a in _ro_bind(src)],
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--remount-ro", "/",
                "--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *inner]

    def python(self, script_args: list[str]) -> list[str]:
        """argv of the interpreter running inside.py with `script_args`."""
        where = SANDBOX_DIR if self.isolated else str(INSIDE.parent)
        return [interpreter(), "-I", "-S", "-B", f"{where}/inside.py", *script_args]


def _probe(mode: str) -> str:
    """'' if a trivial program runs isolated in `mode`, under the seccomp filter, else why not."""
    iso = Isolation(mode)
    try:
        fd = syscalls.pipe()
    except OSError as e:
        return str(e)
    try:
        cmd = iso.command([interpreter(), "-I", "-S", "-c", f"import os; assert os.getuid() == {NS_UID}"],
                          SandboxLimits(), seccomp_fd=fd)
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, pass_fds=(fd,))
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    finally:
        os.close(fd)
    if res.returncode != 0:
        return (res.stderr.decode(errors="replace").strip().splitlines() or [f"exit {res.returncode}"])[-1][:200]
    return ""


@functools.lru_cache(maxsize=1)
def _detect() -> tuple[str, str]:
    missing = [b for b in ("bwrap", "prlimit", "setpriv") if shutil.which(b) is None]
    if missing:
        return "", f"{' and '.join(missing)} not found"
    mode = "bwrap-root" if os.geteuid() == 0 else "bwrap-user"
    return mode, _probe(mode)


def sandbox_cgroup(limits: SandboxLimits) -> cgroups.Cgroup | None:
    """The memory and pids cgroups of one sandboxed process, or None (turned off, or none here: said once)."""
    if not limits.cgroups:
        return None
    h, why = cgroups.hierarchy()
    if h is None:
        _check_cgroups()
        cgroups.warn_missing(why)
        return None
    return cgroups.Cgroup.make(h, limits.memory_mb, limits.nproc + cgroups.EXTRA_PIDS)


def _check_cgroups() -> None:
    h, why = cgroups.hierarchy()
    if h is None and os.environ.get(cgroups.ENV, "") == "require":
        raise SandboxUnavailable(f"{cgroups.ENV}=require, and sandboxes cannot have memory and pids cgroups here: "
                                 f"{why}. Fix: run t2 as root or in a delegated cgroup, or unset {cgroups.ENV}.")


def isolation() -> Isolation:
    """The isolation in force, probed once per process; raises SandboxUnavailable if there is none
    (or, with T2_SANDBOX_CGROUP=require, if sandboxes cannot have their cgroups)."""
    _check_cgroups()
    mode, why = _detect()
    if mode and not why:
        return Isolation(mode)
    if os.environ.get(UNSAFE_ENV, "") not in ("", "0"):
        if shutil.which("prlimit") is None:
            raise SandboxUnavailable("prlimit (util-linux) not found: even unsandboxed runs need it for their "
                                     "rlimits; install util-linux.")
        return Isolation("unsafe", why)
    raise SandboxUnavailable(
        f"cannot isolate generated code here: {why}. Fix: install bubblewrap and libseccomp (apt-get install "
        "bubblewrap libseccomp2; `make setup` does it as root) and allow user namespaces (sysctl kernel.unprivileged_userns_clone=1 "
        "or user.max_user_namespaces > 0); or accept the risk of running model-written code unsandboxed with "
        f"--unsafe-exec or {UNSAFE_ENV}=1.")
