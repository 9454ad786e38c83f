"""vLLM's own OpenAI-compatible server, started for `t2 api --backend vllm` (paper §3.3 applied to traffic).

Why vLLM's server and not t2's vLLM program (`vllm_server.py`, which the `vllm` and `vllm-lora` samplers
drive): vLLM's HTTP server schedules every request it receives into one running batch (continuous batching)
and streams tokens as they come, and it serves LoRA adapters per request by name. An SVF expert's change is
already an SVD, so its best rank-r truncation is a LoRA adapter (t2core/sampling/vllm_lora.py `LoraAdapters`,
the same adapters the `vllm-lora` sampler uses): the server holds the base weights once, and each request
names the adapter of the expert or mixture pass 1 picked. t2 stays in front for pass 1 (t2api/forward.py).

What it is started with: the model directory t2 loaded (`served_dir`), a tokenizer written by t2's own
tokenizer (the same chat template as the `hf` sampler renders), the dtype asked for, LoRA on the adaptable
layers with slots of `lora_rank`, every adapter known at start (`--lora-modules`), and runtime adapter
loading on (`VLLM_ALLOW_RUNTIME_LORA_UPDATING`), through which a mixture's adapter is added the first time a
request needs it. It listens on 127.0.0.1 only, on a free port; its log is `T2_HOME/logs/vllm-openai-*.log`.

It lives in a process group of its own, and a wrapper (`vllm_openai_main.py`) ends that group when this
process is gone, even after SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from t2core import errors, threads
from t2core.artifacts import atomic_dir
from t2core.models.registry import LoadedModel
from t2core.paths import cache_dir, t2_home
from t2core.serving.vllm_env import ServerSettings, last_line, stop_group

BASE_NAME = "base"  # the served model name of the base weights on vLLM's server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tokenizer_dir(loaded: LoadedModel) -> Path:
    """The tokenizer t2 renders prompts with, saved once per weights: vLLM's server applies its chat template."""
    dest = cache_dir() / "served-tokenizer" / loaded.weights_hash[:24]
    if not (dest / "tokenizer_config.json").is_file():
        with atomic_dir(dest) as tmp:
            loaded.tokenizer.save_pretrained(tmp)
    return dest


class VLLMOpenAIServer:
    """One `vllm serve` process: started and ready on construction, adapters added with `load_adapter`."""

    def __init__(self, loaded: LoadedModel, dtype: str, settings: ServerSettings,
                 adapters: dict[str, str] | None = None) -> None:
        """`adapters`: {name: PEFT directory} served from the start; `settings.lora_rank` their slot rank (0: no
        LoRA at all, the base model only)."""
        from t2core.sampling.vllm import _import_root, served_dir

        python = settings.interpreter()  # a missing environment fails here, before anything starts
        self.loaded, self.dtype, self.settings = loaded, dtype, settings
        self.host, self.port = "127.0.0.1", free_port()
        self.url = f"http://{self.host}:{self.port}"
        self.adapters: dict[str, str] = dict(adapters or {})
        self._lock = threading.Lock()
        logs = t2_home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"vllm-openai-{loaded.weights_hash[:12]}-{dtype}-{self.port}.log"
        limit = min(settings.max_model_len, int(getattr(loaded.model.config, "max_position_embeddings", 1 << 30)))
        args = [str(served_dir(loaded)), "--tokenizer", str(tokenizer_dir(loaded)),
                "--served-model-name", BASE_NAME, "--host", self.host, "--port", str(self.port),
                "--dtype", dtype, "--seed", str(loaded.seed), "--max-model-len", str(limit),
                "--generation-config", "vllm",  # no sampling defaults from the model directory: t2's requests say
                "--gpu-memory-utilization", str(settings.gpu_memory_utilization),
                "--enable-prefix-caching", "--disable-uvicorn-access-log"]
        if settings.enforce_eager:
            args.append("--enforce-eager")
        if settings.lora_rank:
            args += ["--enable-lora", "--max-lora-rank", str(settings.lora_rank), "--max-loras",
                     str(settings.max_loras), "--max-cpu-loras", str(max(settings.max_loras, len(self.adapters) + 8))]
            if settings.lora_targets:
                args += ["--lora-target-modules", *settings.lora_targets]
            if self.adapters:
                args += ["--lora-modules", *(f"{n}={p}" for n, p in self.adapters.items())]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        self.threads_key = f"vllm-openai-{id(self)}"
        # by default the server gets the whole thread budget and t2 keeps its own (pass 1 of a request runs before
        # the request reaches the server); `threads="split"` divides the cores where both compute at once
        env.update(threads.child_env(threads.claim(self.threads_key, turns=settings.threads == "turns")))
        env.update(PYTHONPATH=str(_import_root()), VLLM_CPU_KVCACHE_SPACE=str(settings.kv_cache_gib),
                   VLLM_ALLOW_RUNTIME_LORA_UPDATING="True", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
                   TOKENIZERS_PARALLELISM="false")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(python), "-m", "t2core.serving.vllm_openai_main", str(os.getpid()), *args], env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready(settings.start_timeout_s)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise errors.ModelError(f"vLLM's OpenAI server exited ({self.proc.returncode}) while starting: "
                                        f"{last_line(self.log_path)} (log: {self.log_path})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            time.sleep(1.0)
        raise errors.ModelError(f"vLLM's OpenAI server did not answer /health within {timeout:.0f} s: "
                                f"{last_line(self.log_path)} (log: {self.log_path})")

    def load_adapter(self, name: str, path: str) -> None:
        """Make adapter `name` (a PEFT directory) servable, once; a refusal is one error naming the log."""
        import httpx

        with self._lock:
            if self.adapters.get(name) == path:
                return
            r = httpx.post(f"{self.url}/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path},
                           timeout=300.0)
            if r.status_code != 200:
                raise errors.ModelError(f"vLLM's OpenAI server refused the adapter {path} ({r.status_code}: "
                                        f"{r.text[:300]}); log: {self.log_path}")
            self.adapters[name] = path

    def close(self) -> None:
        """SIGTERM to the server's group (vLLM finishes and exits), SIGKILL after 30 s."""
        threads.release(getattr(self, "threads_key", ""))
        proc = getattr(self, "proc", None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # vLLM finishes its requests and exits
        stop_group(proc)  # and its engine process, orphaned when the server exits, with it
