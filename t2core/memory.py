"""Peak memory of one run, measured where it runs (issue 43): host RSS and, on CUDA, torch's peak.

Why this way: a process's peak resident set (VmHWM) only ever grows, so a later stage would inherit an
earlier one's peak. Linux lets a process reset it (`/proc/self/clear_refs` with "5"), so each run
resets it at its start and reads it at its end: the peak of the process while the run ran, model and
all. Where the reset is refused (not Linux, a locked-down /proc) the value is the process's peak so
far, and the metric says so by its name (`peak_host_mb_since_start`). Stages that run at once in one
process (threads) share the counter: each then reports the peak of all of them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def status_mb(field: str, pid: int | None = None) -> float | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile, ...), or of process `pid`'s, in MiB;
    None where unreadable."""
    path = _STATUS if pid is None else Path(f"/proc/{pid}/status")
    try:
        m = re.search(rf"^{field}:\s+(\d+)\s+kB", path.read_text(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None


def _hwm_mb() -> float | None:
    return status_mb("VmHWM")


def _reset_hwm() -> bool:
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def release_freed() -> bool:
    """Hand the memory freed by a finished stage back to the system (glibc's `malloc_trim`): glibc keeps
    freed heap below its top for reuse, so without this a later, smaller stage starts from, and measures,
    an earlier stage's footprint, and the process holds it while other processes need it. Returns whether
    anything could be asked (False off glibc)."""
    import ctypes
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


#: the caches of compiled CPU kernels PyTorch keeps per shape, and the cap t2 gives each (both default to 1,024):
#: oneDNN's own primitive cache, and ideep's (PyTorch's layer over oneDNN)
KERNEL_CACHE_ENVS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")
KERNEL_CACHE_DEFAULT = 64


def bound_kernel_cache() -> dict[str, str]:
    """Cap the caches of compiled kernels (issue 43) where the user set no cap; returns the caps in force.

    Why: on CPU, bf16 matmuls run through oneDNN, which compiles a kernel per shape; oneDNN and ideep (PyTorch's
    layer over it) each keep up to 1,024 of them with their buffers. Training on sequences of varying length
    makes new shapes at every step, so the caches grow stage after stage and are never handed back. Measured
    on 15 LoRA-NTP steps (`bench/kernel_cache.py`): oneDNN's cap at 64 lowered the peak by 0.33-0.36 GB
    (0.85x), ideep's at 64 then what the steps leave held from 306 to 100 MB, both in the same time (cap 0,
    a compilation per call, took 2.3x as long). They read the variables when they first build a kernel, so
    this runs before any model computes (`load_model`)."""
    import os

    return {env: os.environ.setdefault(env, str(KERNEL_CACHE_DEFAULT)) for env in KERNEL_CACHE_ENVS}


def _cuda():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch.cuda if torch.cuda.is_available() else None


@contextlib.contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Yields a dict that holds, once the block ends, `peak_host_mb` (or `peak_host_mb_since_start`),
    `peak_floor_host_mb` (the process's resident memory when the block began: what the stage found held
    already, its floor, so that its own share is the difference) and, on CUDA, `peak_device_mb` (torch's
    max allocated on the current device)."""
    out: dict[str, float] = {}
    start = status_mb("VmRSS")
    if start is not None:
        out["peak_floor_host_mb"] = round(start, 1)
    reset = _reset_hwm()
    cuda = _cuda()
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    try:
        yield out
    finally:
        hwm = _hwm_mb()
        if hwm is not None:
            out["peak_host_mb" if reset else "peak_host_mb_since_start"] = round(hwm, 1)
        if cuda is not None:
            out["peak_device_mb"] = round(cuda.max_memory_allocated() / 2**20, 1)
