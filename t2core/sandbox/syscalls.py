"""The system calls a sandboxed program is refused: a seccomp filter that bubblewrap installs (issue 41).

The namespaces, rlimits and cgroups bound what a sandboxed program can see and spend; the system
calls it can make are still those of any unprivileged user, and some reach past those bounds:

- `ptrace`, `process_vm_readv`/`writev`: other processes of the sandbox, bubblewrap's own first
  process included, whose end the caller waits for (a judgement that should have failed at once
  became a 10 s timeout);
- `socket`/`socketpair` of any family but AF_UNIX: an empty network namespace has no interfaces,
  but AF_VSOCK is not namespaced (on a VM it reaches the hypervisor's services), and netlink and
  packet sockets talk to the kernel. AF_UNIX stays: Python's own `socketpair` (asyncio,
  multiprocessing) needs it, and the sandbox's unix sockets reach nothing outside it;
- `io_uring_*`: io_uring creates sockets (IORING_OP_SOCKET) without the `socket` system call, so
  it would step round the rule above, and it is kernel attack surface of its own;
- `keyctl`, `add_key`, `request_key`: the kernel's keyrings, which belong to a uid, not a sandbox;
- `bpf`, `userfaultfd`, `perf_event_open`: kernel attack surface no scored solution needs;
- the mount family (`mount`, `umount2`, `pivot_root`, `move_mount`, `fsopen`, `fsconfig`,
  `fsmount`, `fspick`, `open_tree`, `open_tree_attr`, `mount_setattr`): the sandbox's user
  namespace has no capabilities, so they fail already; refused, they stay refused whatever a
  future bubblewrap option grants;
- `personality`: execution domains (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE).

Each is refused with an error, not a kill: EPERM, and EAFNOSUPPORT for a socket family (what a
kernel built without it says), so a program sees what it would see on a machine without the
feature. Everything else is allowed. It is a deny list: a system call that Linux adds after the
installed libseccomp knew it is allowed (the exception: `NEWER` below). A call through another ABI
(32-bit `int 0x80`, x32), where the numbers differ, kills the process: libseccomp checks the
architecture first.

The filter is compiled by libseccomp, the library container runtimes use, through `pyseccomp`
(PyPI: libseccomp's own Python API, over ctypes; libseccomp2 is on every Debian system, apt
needs it), once per process, into the classic BPF program that bubblewrap's `--seccomp FD` reads
and installs just before it starts the sandboxed command (after setting no_new_privs). Where
libseccomp or its bindings are missing there is no filter, and sandboxes are refused, as without
bubblewrap (`isolate.isolation`).
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import tempfile

REFUSED: tuple[str, ...] = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    "bpf", "userfaultfd", "perf_event_open",
    "mount", "umount2", "pivot_root", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree",
    "open_tree_attr", "mount_setattr",
    "personality",
)
SOCKET_CALLS = ("socket", "socketpair")  # refused for every address family but AF_UNIX
REFUSED_ERRNO = errno.EPERM
SOCKET_ERRNO = errno.EAFNOSUPPORT
# Since Linux 5.1 (424) a new system call has the same number on every architecture (alpha aside): the
# numbers of those the installed libseccomp may not know by name (2.5.4 predates open_tree_attr, Linux 6.15)
NEWER = {"open_tree_attr": 467}
MAX_PROGRAM = 32 * 1024  # a pipe takes it whole before anyone reads (64 KiB); ours is ~1 KiB


def _number(sc, arch: int, name: str) -> int:
    nr = sc.resolve_syscall(arch, name)
    if nr >= 0:
        return nr
    if name in NEWER:
        return NEWER[name]
    raise ValueError(f"libseccomp does not know the system call {name!r}")


@functools.lru_cache(maxsize=1)
def program() -> tuple[bytes, str]:
    """(the compiled BPF program, "") or (b"", why there is none here), worked out once per process."""
    try:
        import pyseccomp as sc
    except ImportError as e:
        return b"", f"no seccomp filter: the Python package pyseccomp is missing ({e}; a t2 dependency)"
    except (RuntimeError, OSError) as e:  # pyseccomp loads libseccomp at import
        return b"", f"no seccomp filter: libseccomp is missing ({e}; apt-get install libseccomp2)"
    try:
        arch = sc.system_arch()
        f = sc.SyscallFilter(sc.ALLOW)
        for name in REFUSED:
            f.add_rule(sc.ERRNO(REFUSED_ERRNO), _number(sc, arch, name))
        for name in SOCKET_CALLS:
            f.add_rule(sc.ERRNO(SOCKET_ERRNO), name, sc.Arg(0, sc.NE, socket.AF_UNIX))
        with tempfile.TemporaryFile() as out:
            f.export_bpf(out)
            out.seek(0)
            data = out.read()
    except (OSError, ValueError, RuntimeError) as e:
        return b"", f"no seccomp filter: libseccomp could not compile it ({e})"
    if not 0 < len(data) <= MAX_PROGRAM:
        return b"", f"no seccomp filter: libseccomp compiled {len(data)} bytes"
    return data, ""


def pipe() -> int:
    """The read end of a pipe that holds the compiled filter, for bubblewrap's `--seccomp FD` (it reads
    to end of file); the caller closes it once bubblewrap has started. O_CLOEXEC: only `pass_fds`
    hands it on."""
    data, why = program()
    if not data:
        raise OSError(why)
    r, w = os.pipe()
    try:
        os.write(w, data)  # whole: far below a pipe's capacity, so no reader is needed yet
    except OSError:
        os.close(r)
        raise
    finally:
        os.close(w)
    return r
