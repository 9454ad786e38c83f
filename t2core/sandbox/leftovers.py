"""What a finished sandbox leaves on the host, given back (issue 41).

Once a sandbox is reaped its processes are gone, and with them their memory, their tmpfs mounts
(work dir, /tmp, /dev/shm) and their memfds. Two kinds of memory outlive them, and no limit covers
either once the sandbox's cgroups are removed:

- page cache and reclaimable kernel memory charged to its memory cgroup, above all the dentries
  of failed lookups through the read-only binds of the host's file system (a program can leave
  hundreds of megabytes of them in a few seconds). Removing a memory cgroup frees none of it: the
  charges move up to the caller's cgroup and stay until the whole machine is short of memory. So
  before a sandbox's memory cgroup is removed, what it holds is reclaimed (`before_removal`);
- unix sockets in a cycle that no process can reach any more: a program sends a socket (with
  a memfd, a pipe, more sockets) over itself and closes every descriptor. The kernel frees such
  cycles only in its unix-socket garbage collector, which runs when some process closes a unix
  socket, so the caller closes one after each sandbox (`collect_unix_socket_cycles`).

Why not reclaim every cgroup: a write to v1's `memory.force_empty` costs ~12 ms (median; up to
0.5 s) on a loaded 2-core VM even when there is nothing to reclaim, most of it waiting for every
CPU to drain its page lists, against ~30 ms for a whole judgement; and it drops the dentries the
next sandbox would reuse. A correct program's memory cgroup holds 0.03-1 MB once it is reaped
(kernel objects still waiting for an RCU grace period, per-CPU charge batches), and 200 correct
judgements in a row grew the caller's cgroup by nothing. So a cgroup is reclaimed when it holds more
than `FLOOR`; and so that many sandboxes each leaving just under `FLOOR` cannot add up, the folder
that holds them all (`t2-sandbox/`, where the charges of removed cgroups go) is reclaimed once what
removed sandboxes left there passes `BUDGET` (`after_removal`).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

FLOOR = 4 << 20  # a reaped sandbox's memory cgroup holding more than this is reclaimed before removal
BUDGET = 32 << 20  # what removed sandboxes may leave in their parent folder before it is reclaimed
_USAGE = {"v1": "memory.usage_in_bytes", "v2": "memory.current"}


def usage(d: Path, version: str) -> int:
    """Bytes charged to memory cgroup `d` and its descendants (0 if it is gone)."""
    try:
        return int((d / _USAGE[version]).read_text())
    except (OSError, ValueError):
        return 0


def reclaim(d: Path, version: str, amount: int | None = None) -> None:
    """Reclaim what memory cgroup `d` holds (at most `amount` bytes on v2; v1 takes all it can).

    v1: a write to memory.force_empty reclaims until the cgroup's usage is zero or the kernel gives
    up; v2: memory.reclaim. Best effort: the kernel may stop short (EAGAIN on v2, EINTR), and what is
    left is what rmdir hands up."""
    with contextlib.suppress(OSError, ValueError):
        if version == "v1":
            (d / "memory.force_empty").write_text("0")
        elif version == "v2":
            want = usage(d, version) if amount is None else amount
            if want > 0:
                (d / "memory.reclaim").write_text(str(want))


def before_removal(d: Path, version: str) -> None:
    """Reclaim a reaped sandbox's memory cgroup if it holds more than `FLOOR`."""
    if usage(d, version) > FLOOR:
        reclaim(d, version)


def after_removal(parent: Path, version: str) -> None:
    """Reclaim `parent` (the folder of every sandbox's memory cgroup) once the cgroups removed from it
    left more than `BUDGET` there: its usage less that of the cgroups it still has, live or not yet
    removed (this process's or another t2 process's sharing the folder). On v1 this reclaims the live
    ones too, which costs them little: without swap only their page cache and unused dentries go."""
    with contextlib.suppress(OSError), os.scandir(parent) as entries:  # scandir: no stat of each file
        left = usage(parent, version) - sum(usage(Path(e.path), version) for e in entries
                                            if e.is_dir(follow_symlinks=False))
        if left > BUDGET:
            reclaim(parent, version, left)


def collect_unix_socket_cycles() -> None:
    """Make the kernel collect the unix sockets that only an unreachable cycle keeps alive: close a
    unix socket (a socketpair, made and closed: microseconds). The collector runs in a kernel
    worker; the memory is back within ~0.1 s."""
    with contextlib.suppress(OSError):  # out of descriptors: the next sandbox's call collects them
        a, b = socket.socketpair()
        a.close()
        b.close()
