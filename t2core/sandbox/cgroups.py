"""A memory cgroup and a pids cgroup for each sandboxed process: what rlimits cannot count.

RLIMIT_AS bounds a process's address space, not the memory it leaves outside it: pages of the
tmpfs mounts (the work dir, /tmp, /dev/shm), a memfd whose mapping is gone but whose descriptor
is kept, or the kernel's inodes and dentries of half a million empty files. A memory cgroup
counts all three: shmem and page cache are charged to the cgroup of the process that touched
them, and kernel memory is charged with them (always on cgroup v2; on v1 since Linux 5.x, the
counter is memory.usage_in_bytes, checked by `test_a_memory_cgroup_counts_tmpfs_memfd_and_inodes`).
RLIMIT_NPROC counts the processes of a uid, shared by every sandbox running at once; a pids
cgroup counts the processes of one sandbox.

Each process of a judgement (judge and candidate apart: the candidate cannot spend the judge's
memory) gets one cgroup of each, made by the caller under the cgroup the caller runs in, and
entered before bubblewrap's first instruction, so that everything the sandbox starts is inside;
it is removed once the sandbox is reaped, its memory reclaimed first where it holds more than a
correct program leaves (`leftovers.before_removal`): removing a memory cgroup frees nothing, the
charges it still holds move up to the caller's cgroup. How it is entered (`Cgroup.launch`): on v1, where a
cgroup holds threads, the calling thread writes "0" (itself) into both, forks bubblewrap (which
inherits them) and steps back: moving only the writing thread skips the kernel's global
threadgroup lock, whose write side waits for an RCU grace period (5-20 ms on a VM). On v2, where a
memory cgroup holds whole processes only, a `sh` writes its pid into it and execs bubblewrap, and
pays that wait (`bench/sandbox.py --against`'s "cgroups via sh" row: 1.41x a judgement; docs/sandbox.md).
The kernel enforces the limits: an allocation past `memory_mb` makes the kernel kill the process
(OOM in that cgroup only), a fork past `nproc` fails.

Where the machine has no such cgroups, or this user cannot create them (not root and nothing
delegated), the sandbox runs with rlimits and tmpfs sizes only, and says so once on stderr
(`T2_SANDBOX_CGROUP=require` refuses instead; `=0` turns the cgroups off).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from t2core.sandbox import leftovers

T = TypeVar("T")

PARENT = "t2-sandbox"  # the folder, under the caller's own cgroup, that holds the sandboxes' cgroups
ENV = "T2_SANDBOX_CGROUP"  # "" (use where possible), "0" (never), "require" (refuse without)
EXTRA_PIDS = 4  # bubblewrap's own processes in the cgroup (two layers as root), on top of `nproc`
_counter = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """Where sandbox cgroups are made: one folder per controller (v1) or one for both (v2)."""

    version: str  # "v1" | "v2"
    memory: Path
    pids: Path


def _own_paths() -> dict[str, str]:
    """{controller: path} of this process's cgroups ("" for the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = path
    return out


def _mounts() -> dict[str, Path]:
    """{controller: mount point} of v1 cgroup hierarchies, and "" for the v2 one."""
    out: dict[str, Path] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        if parts[2] == "cgroup2":
            out.setdefault("", Path(parts[1]))
        elif parts[2] == "cgroup":
            for opt in parts[3].split(","):
                out.setdefault(opt, Path(parts[1]))
    return out


def _under(mount: Path, path: str) -> Path:
    """The folder of cgroup `path` in the hierarchy mounted at `mount` (the mount itself in a cgroup
    namespace that hides the path)."""
    p = mount / path.lstrip("/")
    return p if p.is_dir() else mount


def _locate() -> Hierarchy | str:
    try:
        own, mounts = _own_paths(), _mounts()
    except (OSError, ValueError) as e:
        return f"cannot read this process's cgroups ({e})"
    if "memory" in mounts and "pids" in mounts:
        return Hierarchy("v1", _under(mounts["memory"], own.get("memory", "/")) / PARENT,
                         _under(mounts["pids"], own.get("pids", "/")) / PARENT)
    if "" in mounts:
        base = _under(mounts[""], own.get("", "/"))
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
            if not {"memory", "pids"} <= set(enabled):
                (base / "cgroup.subtree_control").write_text("+memory +pids")
        except OSError as e:
            return (f"cgroup v2: the memory and pids controllers are not delegated to {base} ({e.strerror}); "
                    "run t2 in a cgroup that has them, e.g. under `systemd-run --user --scope -p Delegate=yes`")
        return Hierarchy("v2", base / PARENT, base / PARENT)
    return "no memory and pids cgroup controllers are mounted"


def _prepare(h: Hierarchy) -> str:
    """'' once the parent folders exist and take a child with limits; else why not."""
    try:
        for d in {h.memory, h.pids}:
            d.mkdir(exist_ok=True)
        if h.version == "v2":
            (h.memory / "cgroup.subtree_control").write_text("+memory +pids")
        probe = Cgroup.make(h, 64, 8)
        probe.remove()
    except OSError as e:
        return f"cannot create cgroups under {h.memory} ({e.strerror or e}; not root, and none delegated)"
    _prune(h)
    return ""


def _prune(h: Hierarchy) -> None:
    """Remove the empty cgroups of earlier t2 processes that ended without removing theirs (kill -9),
    their memory reclaimed first."""
    for d in {h.memory, h.pids}:
        for child in d.iterdir():
            pid = child.name.split("-")[0]
            if child.is_dir() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                if d == h.memory:
                    leftovers.before_removal(child, h.version)
                try:
                    child.rmdir()
                except OSError:
                    pass
    leftovers.after_removal(h.memory, h.version)


@functools.lru_cache(maxsize=1)
def hierarchy() -> tuple[Hierarchy | None, str]:
    """(where sandbox cgroups go, "") or (None, why there are none here), worked out once per process."""
    if os.environ.get(ENV, "") == "0":
        return None, f"{ENV}=0"
    h = _locate()
    if isinstance(h, str):
        return None, h
    why = _prepare(h)
    return (None, why) if why else (h, "")


@functools.lru_cache(maxsize=1)
def warn_missing(why: str) -> None:
    """The one line a process prints when its sandboxes run without cgroups."""
    print(f"t2 sandbox: no memory/pids cgroup ({why}): tmpfs, memfd and kernel memory of sandboxed code are "
          "bounded only by the tmpfs sizes, and processes only by RLIMIT_NPROC", file=sys.stderr)


@dataclass
class Cgroup:
    """The memory and pids cgroups of one sandboxed process."""

    h: Hierarchy
    dirs: tuple[Path, ...]  # (memory, pids); the same folder twice on v2

    @classmethod
    def make(cls, h: Hierarchy, memory_mb: int, pids: int) -> Cgroup:
        _retry_pending()
        name = f"{os.getpid()}-{next(_counter)}"
        mem, pid = h.memory / name, h.pids / name
        made = []
        try:
            for d in dict.fromkeys((mem, pid)):
                d.mkdir()
                made.append(d)
            cg = cls(h, (mem, pid))
            limit = str(memory_mb * 1024 * 1024)
            if h.version == "v1":
                (mem / "memory.limit_in_bytes").write_text(limit)
                _write_if_there(mem / "memory.memsw.limit_in_bytes", limit)  # no swap beyond it either
            else:
                (mem / "memory.max").write_text(limit)
                _write_if_there(mem / "memory.swap.max", "0")
            (pid / "pids.max").write_text(str(pids))
            return cg
        except OSError:
            for d in reversed(made):
                _rmdir(d, (0,), "")
            raise

    @property
    def procs(self) -> tuple[str, str]:
        return tuple(str(d / "cgroup.procs") for d in self.dirs)  # type: ignore[return-value]

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` started inside both cgroups: the shell joins them, then becomes `cmd`."""
        return ["/bin/sh", "-c", 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"', "t2-cgroup",
                *self.procs, *cmd]

    def launch(self, cmd: list[str], start: Callable[[list[str]], T]) -> T:
        """`start(cmd)` (a Popen) with the new process inside both cgroups from its first instruction.

        v1: a task's cgroups are per thread, and a forked child inherits its thread's; memory is
        charged to the cgroup of the process's leader, so the caller's own allocations meanwhile stay
        where they were. The thread steps back even if `start` raises; if it cannot, later launches
        use the shell. v2 (or after such a failure): `wrap`."""
        if self.h.version != "v1" or _thread_join_broken.is_set():
            return start(self.wrap(cmd))
        with self._thread_inside():
            return start(cmd)

    @contextlib.contextmanager
    def _thread_inside(self):
        tid = "0"  # the writing thread itself: the kernel then skips its global threadgroup lock (an RCU grace period)
        entered: list[Path] = []
        try:
            for d in self.dirs:
                (d / "tasks").write_text(tid)
                entered.append(d)
            yield
        finally:
            for d in entered:
                try:
                    (d.parent.parent / "tasks").write_text(tid)  # <caller's cgroup>/t2-sandbox/<name>
                except OSError:
                    _thread_join_broken.set()
                    raise

    def events(self) -> str:
        """What the kernel refused this process, as words for the verdict's detail ("" for nothing)."""
        mem, pid = self.dirs
        notes = []
        if _count(mem / ("memory.oom_control" if self.h.version == "v1" else "memory.events"), "oom_kill"):
            notes.append("its memory cgroup's limit was hit (the kernel killed it)")
        if _count(pid / "pids.events", "max"):
            notes.append("its pids cgroup refused a fork")
        return "; ".join(notes)

    def remove(self) -> None:
        """rmdir both now if the kernel is done with them, else later (`_retry_pending`): the
        judgement never waits for a process's teardown. Each try reclaims the memory cgroup first
        where it holds more than a correct program leaves, and what removed cgroups left in the
        parent folder is reclaimed once it adds up (`leftovers`)."""
        mem = self.dirs[0]
        for d in dict.fromkeys(self.dirs):
            _rmdir(d, (0,), self.h.version if d == mem else "")
        leftovers.after_removal(self.h.memory, self.h.version)


def _write_if_there(path: Path, value: str) -> None:
    if path.exists():
        path.write_text(value)


def _count(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0


_thread_join_broken = threading.Event()  # a thread could not step back out once: use `wrap` from then on
# cgroups whose last process was still being torn down, with their memory cgroup version ("" for a v1 pids
# cgroup): reclaimed and removed by the next `make`
_pending: list[tuple[Path, str]] = []
_pending_lock = threading.Lock()  # run_many judges in threads


def _rmdir(d: Path, delays: tuple[float, ...], memory: str) -> bool:
    """rmdir a cgroup, retrying after each delay while the kernel tears its last process down (a
    process that filled a tmpfs with 400,000 inodes takes ~2 s to go); one still busy is retried later.
    `memory`: the version of a memory cgroup, whose memory is reclaimed before each try ("" for none)."""
    for delay in delays:
        time.sleep(delay)
        if memory:
            leftovers.before_removal(d, memory)
        try:
            d.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            continue
    with _pending_lock:
        if (d, memory) not in _pending:
            _pending.append((d, memory))
    return False


def _retry_pending(delays: tuple[float, ...] = (0,)) -> None:
    with _pending_lock:
        todo = _pending[:]
        _pending.clear()
    for d, memory in todo:
        _rmdir(d, delays, memory)
    for parent, memory in {(d.parent, memory) for d, memory in todo if memory}:
        leftovers.after_removal(parent, memory)


atexit.register(lambda: _retry_pending((0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5)))  # the last ones, waiting
