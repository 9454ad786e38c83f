"""`t2 doctor`: one screen that explains this machine to t2 (issue 19).

It shows what decides speed and what may be missing: the CPU's capability and bf16 support, the
`dtype="auto"` choice with its reason and probe ratio (t2core/precision.py), the threads rule
(t2core/threads.py), whether a GPU, the code sandbox and the vLLM environment are there, and the
paths in use. Nothing here loads a model or starts a server; the probe is the one measurement
(<= 0.2 s, cached).
"""

from __future__ import annotations

import os
import platform


def rows() -> list[tuple[str, str]]:
    """(what, value) pairs, in the order `t2 doctor` prints them."""
    import torch

    from t2core import __version__, precision, threads
    from t2core.hashing import git_sha
    from t2core.paths import cache_dir, resolve_data_dir, t2_home

    m = precision.this_machine()
    choice = precision.auto_choice()
    out = [("t2", f"{__version__} (git {git_sha() or 'unknown'}), torch {torch.__version__}, "
                  f"python {platform.python_version()}"),
           ("cpu", f"{m.cpu_model}; capability {m.capability}; native bf16 {'yes' if m.native_bf16 else 'no'} "
                   f"(bf16 flags: {', '.join(sorted(m.flags & set(precision.NATIVE_BF16_FLAGS))) or 'none'})"),
           ("dtype auto", f"{choice.dtype}: {choice.reason}"),
           ("bf16 probe", "not needed (no native bf16)" if choice.ratio is None else
            f"bf16 autocast {choice.ratio:.2f}x fp32's time{' (cached)' if choice.cached else ''}"),
           ("threads", f"{threads.current()} torch threads of {threads.budget()} "
                       f"({'T2_THREADS' if os.environ.get(threads.ENV) else 'cores'}); "
                       f"cores {len(threads.cores())}; a vLLM server gets {_vllm_threads()}")]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out.append(("gpu", ", ".join(names)))
    else:
        out.append(("gpu", "none (torch sees no CUDA device)"))
    out.append(("sandbox", _sandbox()))
    out.append(("vllm env", _vllm()))
    data = resolve_data_dir(None)
    from catalog.db import default_path

    out += [("T2_HOME", str(t2_home())), ("cache", str(cache_dir())), ("catalog", str(default_path())),
            ("data", str(data) if data else "none found: datasets come from the Hugging Face hub (T2_DATA_DIR)"),
            ("prefect api", os.environ.get("PREFECT_API_URL") or "none set: `t2 run` starts a temporary server")]
    return out


def _sandbox() -> str:
    from t2core.errors import T2Error
    from t2core.sandbox import cgroups, syscalls
    from t2core.sandbox.isolate import isolation

    try:
        iso = isolation()
    except T2Error as e:
        return f"unavailable: {str(e).split('. Fix:')[0]}"
    h, why = cgroups.hierarchy()
    cg = (f"memory + pids cgroups ({h.version}), memory reclaimed before each is removed" if h else
          f"no cgroups: {why} (what a sandbox leaves in kernel memory, such as the dentries of its failed "
          "lookups, is not reclaimed)")
    filt = (f"seccomp filter ({len(syscalls.REFUSED)} system calls refused, and sockets other than AF_UNIX)"
            if iso.filtered else "no seccomp filter")
    return iso.mode + (f" (NOT isolated: {iso.reason})" if not iso.isolated else "") + f"; {filt}; {cg}"


def _vllm_threads() -> str:
    """What `threads.claim` gives the vLLM server under its settings (t2core/sampling/vllm.py), in words."""
    from t2core import threads
    from t2core.serving.vllm_env import ServerSettings

    if ServerSettings().threads == "turns":
        return (f"all {threads.budget()} in turns (it runs while its caller waits; the caller keeps its "
                f"{threads.budget()})")
    return f"{threads.split(threads.budget(), 2)[-1]} (an equal split with its caller)"


def _vllm() -> str:
    from t2core.errors import T2Error
    from t2core.serving.vllm_env import ServerSettings

    try:
        py = ServerSettings().interpreter()
    except T2Error:
        return "missing (`make vllm-env` creates .venv-vllm; only --sampler vllm needs it)"
    return f"{py}" + ("" if (py.parent.parent / ".t2-installed").exists() else " (not made by `make vllm-env`)")
