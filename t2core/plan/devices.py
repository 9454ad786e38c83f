"""The devices a plan is checked against, their memory budget and a stated throughput for time estimates.

Why stated and not measured: the plan must say whether the `paper` profile fits one 80 GB GPU on a machine
without one. Its times are estimates from FLOPs at the effective rates below (a fraction of the peak that
dense transformer work reaches), plus, for generation on a GPU, one read of the weights per decoding step
(memory-bound). They say minutes from hours, not seconds.

The memory budget: `T2_MEMORY_GB` (or `--memory-gb`) where set, else what this machine has (MemTotal) less a
margin for the rest of the system; on a GPU, the card's memory (`--gpu-gb`, default 80: an H100).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from t2core.errors import ConfigError

GB = 1e9
#: effective FLOP/s of dense transformer work: CPU fp32 from SmolLM2-135M on 2 AVX2 cores (forward 585 tok/s,
#: forward+backward 257 tok/s: ~1.6e11 either way); GPU bf16 at ~35% of an H100's 989 TFLOP/s
CPU_FLOPS_PER_CORE = 0.8e11
GPU_FLOPS = 3.5e14
GPU_BANDWIDTH = 3.35e12  # bytes/s of HBM3 (H100 SXM): one read of the weights per decoding step
HOST_MARGIN = 0.15  # of MemTotal left to the system and other processes
GPU_SERVER_HOST_GB = 128.0  # the host memory assumed beside GPUs this machine does not have (one H100 server's)


def _mem_total() -> int | None:
    try:
        m = re.search(r"^MemTotal:\s+(\d+)\s+kB", Path("/proc/meminfo").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


def memory_budget(given_gb: float | None = None) -> tuple[int, str]:
    """(bytes, where the number came from): `given_gb`, else $T2_MEMORY_GB, else MemTotal less the margin."""
    if given_gb is None and os.environ.get("T2_MEMORY_GB"):
        raw = os.environ["T2_MEMORY_GB"]
        try:
            given_gb = float(raw)
        except ValueError:
            raise ConfigError(f"T2_MEMORY_GB={raw!r} is not a number of gigabytes; set it to e.g. 8, or unset it "
                              "(default: this machine's memory less 15%).") from None
        source = "T2_MEMORY_GB"
    else:
        source = "--memory-gb"
    if given_gb is not None:
        if not given_gb > 0:
            raise ConfigError(f"memory budget {given_gb} GB must be > 0 (--memory-gb / T2_MEMORY_GB).")
        return int(given_gb * GB), source
    total = _mem_total()
    if total is None:
        return int(8 * GB), "assumed 8 GB (no /proc/meminfo; set T2_MEMORY_GB)"
    return int(total * (1 - HOST_MARGIN)), f"this machine's {total / GB:.1f} GB less {HOST_MARGIN:.0%}"


@dataclass(frozen=True)
class Devices:
    """`gpus` GPUs of `gpu_bytes` each (0: the CPU), `host_bytes` of host memory for t2's processes, and
    the CPU cores for time estimates."""

    gpus: int = 0
    gpu_bytes: int = int(80 * GB)
    host_bytes: int = int(8 * GB)
    host_source: str = ""
    cores: int = 2

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ConfigError(f"--gpus {self.gpus} must be >= 0 (0: plan for the CPU).")

    @property
    def gpu(self) -> bool:
        return self.gpus > 0

    def describe(self) -> str:
        host = f"host {self.host_bytes / GB:.1f} GB ({self.host_source})" if self.host_source else \
            f"host {self.host_bytes / GB:.1f} GB"
        if self.gpu:
            return f"{self.gpus} GPU x {self.gpu_bytes / GB:.0f} GB, {host}"
        return f"CPU ({self.cores} cores), {host}"

    def misfit(self, device_peak: int, host_peak: int, sampler_peak: int) -> str | None:
        """Why these peaks do not fit (None: they do). On one GPU a vLLM sampler shares the card."""
        if self.gpu:
            room = self.gpu_bytes - (sampler_peak if self.gpus == 1 else 0)
            if device_peak > room:
                shared = f" ({sampler_peak / GB:.0f} GB of it given to the vLLM sampler)" if self.gpus == 1 and \
                    sampler_peak else ""
                return f"needs {device_peak / GB:.1f} GB on the GPU, which has {room / GB:.1f} GB{shared}"
        if host_peak > self.host_bytes:
            return f"needs {host_peak / GB:.1f} GB of host memory, the budget is {self.host_bytes / GB:.1f} GB"
        return None

    def seconds(self, f, weight_bytes: int) -> float:
        """An estimate of the time of footprint `f`'s work on these devices."""
        if self.gpu:
            return f.flops / GPU_FLOPS + f.decode_steps * weight_bytes / GPU_BANDWIDTH
        return f.flops / (CPU_FLOPS_PER_CORE * max(1, self.cores))


def devices_for(gpus: int | None = None, gpu_gb: float = 80.0, memory_gb: float | None = None) -> Devices:
    """The devices to plan for: `gpus` (None: those this machine has), each `gpu_gb`, and the host budget
    (this machine's, or, for GPUs it does not have, a GPU server's unless given)."""
    import torch

    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus is None:
        gpus = here
        if gpus:
            gpu_gb = torch.cuda.get_device_properties(0).total_memory / GB
    if not gpu_gb > 0:
        raise ConfigError(f"--gpu-gb {gpu_gb} must be > 0.")
    if gpus > here and memory_gb is None and not os.environ.get("T2_MEMORY_GB"):
        host, source = int(GPU_SERVER_HOST_GB * GB), f"assumed beside {gpus} GPU(s) this machine lacks; --memory-gb"
    else:
        host, source = memory_budget(memory_gb)
    return Devices(gpus, int(gpu_gb * GB), host, source, os.cpu_count() or 1)
