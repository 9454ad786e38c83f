"""`dtype="auto"`: the compute precision this machine runs fastest, resolved once per process.

Why: bf16 autocast is ~1.6-2x faster than fp32 on CPUs with native bf16 (AVX512_BF16, AMX), but on
AVX2-only CPUs it has no native kernels: a bf16 matmul ran ~45x and an autocast `nn.Linear` ~6x slower
than fp32 there (issue 19). So the profiles and the CLI default to "auto", and this module turns it into
a concrete dtype:

- CUDA: bfloat16 where the device supports it, else float32;
- CPU with native bf16: a probe (one `nn.Linear` in fp32 and under bf16 autocast, <= 0.2 s) confirms
  that bf16 is faster here; its result is cached per machine and torch version under the cache
  directory (`precision/<key>.json`);
- any other CPU: float32.

The *resolved* dtype is what every settings object holds (GenerationConfig, RLConfig, NTPConfig,
FewShotConfig resolve "auto" in their `__post_init__`), so run ids and records name "float32" or
"bfloat16", never "auto": the same request on an AVX-512 and on an AVX2 machine gives two runs.
The choice and its reason are printed once per process, on stdout, when work starts (`announce`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass

AUTO = "auto"
#: bf16 must be at least this much faster (bf16 time / fp32 time below it) to be chosen by the probe.
BF16_MIN_GAIN = 0.9
#: CPU flags that mean native bf16 arithmetic (Linux /proc/cpuinfo names).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Choice:
    """What "auto" resolved to on this machine, and why (also what `t2 doctor` shows)."""

    dtype: str  # float32 | bfloat16
    reason: str
    device: str  # cpu | cuda
    capability: str  # torch.backends.cpu.get_cpu_capability(), or the CUDA device name
    native_bf16: bool
    ratio: float | None = None  # probe: bf16 autocast time / fp32 time (None: not probed)
    cached: bool = False  # the probe's result came from the cache


@dataclass(frozen=True)
class Machine:
    """The facts the rule reads (a dataclass so tests can pass another machine)."""

    cuda: bool
    cuda_bf16: bool
    cuda_name: str
    capability: str
    flags: frozenset[str]
    cpu_model: str

    @property
    def native_bf16(self) -> bool:
        """bf16 units in the hardware *and* ATen dispatching to its AVX-512 kernels (ATEN_CPU_CAPABILITY
        can cap that at AVX2, and then bf16 runs the emulated way)."""
        return bool(self.flags & set(NATIVE_BF16_FLAGS)) and self.capability.upper().startswith(("AVX512", "AMX"))


def this_machine() -> Machine:
    import torch

    cuda = torch.cuda.is_available()
    flags: frozenset[str] = frozenset()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags" and not flags:  # the first core's: all cores are alike
                    flags = frozenset(value.split())
                elif key.strip() == "model name":
                    model = value.strip()
    except OSError:
        pass
    return Machine(cuda=cuda, cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
                   cuda_name=torch.cuda.get_device_name(0) if cuda else "",
                   capability=torch.backends.cpu.get_cpu_capability(), flags=flags, cpu_model=model)


def probe_bf16(repeats: int = 5) -> float:
    """bf16-autocast time / fp32 time of one (128, 576) x (576, 1536) `nn.Linear`: SmolLM2's MLP shape.
    Best of `repeats` each, after a warm-up; ~0.05-0.2 s in all on 2 cores."""
    import torch

    lin = torch.nn.Linear(576, 1536)
    x = torch.randn(128, 576)

    def best(autocast: bool) -> float:
        times = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            lin(x)  # warm-up (and the weight-cast cache)
            for _ in range(repeats):
                t0 = time.perf_counter()
                lin(x)
                times.append(time.perf_counter() - t0)
        return min(times)

    return best(True) / best(False)


def _cache_key(m: Machine) -> str:
    import torch

    facts = {"cpu": m.cpu_model, "flags": sorted(m.flags & {*NATIVE_BF16_FLAGS, "avx2", "avx512f", "amx_tile"}),
             "capability": m.capability, "torch": torch.__version__, "threads": torch.get_num_threads(),
             "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", ""))}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def _probe_cached(m: Machine) -> tuple[float, bool]:
    """(ratio, came from the cache). A cache that cannot be read or written is only a slower start."""
    from t2core.paths import cache_dir

    path = None
    try:
        path = cache_dir() / "precision" / f"{_cache_key(m)}.json"
        return float(json.loads(path.read_text())["ratio"]), True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ratio = probe_bf16()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"ratio": ratio, "machine": {**asdict(m), "flags": sorted(m.flags)}},
                                      sort_keys=True, default=str))
            os.replace(tmp, path)
        except OSError:
            pass
    return ratio, False


def decide(m: Machine, probe=None) -> Choice:
    """The auto rule for machine `m`; `probe()` -> (ratio, cached) is called only for a CPU with native bf16."""
    if m.cuda:
        if m.cuda_bf16:
            return Choice("bfloat16", f"CUDA device {m.cuda_name} supports bf16", "cuda", m.cuda_name, True)
        return Choice("float32", f"CUDA device {m.cuda_name} has no bf16 support", "cuda", m.cuda_name, False)
    if not m.native_bf16:
        why = "bf16 units" if not m.flags & set(NATIVE_BF16_FLAGS) else "AVX-512 kernels dispatched"
        return Choice("float32", f"this CPU has no native bf16 ({m.capability}, no {why}); bf16 autocast would be "
                      "~6x slower", "cpu", m.capability, False)
    ratio, cached = (probe or (lambda: _probe_cached(m)))()
    if ratio < BF16_MIN_GAIN:
        return Choice("bfloat16", f"native bf16 ({m.capability}); the probe ran bf16 autocast at {ratio:.2f}x fp32's "
                      "time", "cpu", m.capability, True, ratio, cached)
    return Choice("float32", f"native bf16 ({m.capability}), but the probe ran bf16 autocast at {ratio:.2f}x fp32's "
                  "time: not faster here", "cpu", m.capability, True, ratio, cached)


_CHOICE: Choice | None = None
_USED = False  # a setting said "auto" in this process
_ANNOUNCED = False
_LOCK = threading.Lock()


def auto_choice() -> Choice:
    """This process's resolution of "auto" (decided once)."""
    global _CHOICE
    with _LOCK:
        if _CHOICE is None:
            _CHOICE = decide(this_machine())
        return _CHOICE


def resolve_dtype(value: str) -> str:
    """`value` itself, or this machine's choice when it is "auto"."""
    global _USED
    if value != AUTO:
        return value
    _USED = True
    return auto_choice().dtype


def announce() -> None:
    """Print, once per process and only if some setting said "auto", what it chose and why (stdout). Called
    where work starts (a model is loaded), not where settings are checked, so a request that fails
    validation gets its one error line and nothing else."""
    global _ANNOUNCED
    if _USED and not _ANNOUNCED and os.environ.get("T2_QUIET_DTYPE") != "1":
        _ANNOUNCED = True
        c = auto_choice()
        print(f"t2: dtype auto -> {c.dtype}: {c.reason}", flush=True)  # stdout: stderr is for the one error line


def reset_for_tests(choice: Choice | None = None) -> None:
    """Forget (or set) the process's choice: tests mock the machine with it."""
    global _CHOICE, _ANNOUNCED
    with _LOCK:
        _CHOICE, _ANNOUNCED = choice, False


def autocast_for(dtype: str, device):
    """The context a forward of compute dtype `dtype` runs in on `device`: bf16 autocast for "bfloat16", else
    nothing (a float32 forward needs no autocast, and a device autocast does not know, such as `meta` in the
    placement tests, must not make it fail)."""
    import contextlib

    import torch

    if dtype != "bfloat16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
