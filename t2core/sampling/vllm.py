"""`vllm` sampler: a vLLM engine in its own process and environment, fed experts as z vectors only.

vLLM pins a torch and a fastapi that clash with Prefect's, so the engine runs in a server process
started with the Python of `.venv-vllm` (`make vllm-env`; `t2core/serving/vllm_env.py`). The
server holds the base model, the SVD factors from the project's SVD store (sha256 checked) and the
original tensors; an expert crosses the pipe as its multiplier vectors (`SVFWeights`, paper §3.1:
W' = U diag(s ⊙ z) Vᵀ needs only z) and is identified by a content hash both ends compute
(`t2core/serving/wire.py`). Every request names the expert it expects, so nothing is ever generated
from stale weights, and the prefix cache is reset with every update.

The client keeps what makes results comparable with the `hf` sampler: it renders and tokenises the
prompts with its own tokenizer and sends token ids, and decodes the returned ids itself. Greedy fp32
output is the hf sampler's (tests/test_vllm.py); sampled draws use vLLM's own seeded generator,
so they are reproducible but not the hf sampler's draws.

Per-conversation experts (`RowExperts`: a CEM population, a dispatcher's choices) are served grouped
by expert: vLLM applies one set of weights to every sequence in its batch, and its per-request
adapter kernels are LoRA's, which have no SVF form. Each distinct mixture is one weight swap and
one sub-batch.

Servers are shared within a process, one per (base weights, dtype), and stopped at exit; a server
whose client dies (even by kill -9) ends itself within a second.

    make_sampler("vllm", loaded=loaded)   # `t2 eval --sampler vllm`, `t2 train --sampler vllm`, profiles
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from t2core import errors, threads
from t2core.artifacts import atomic_dir
from t2core.hashing import tensors_hash
from t2core.logprobs import group_log_softmax
from t2core.models.registry import LoadedModel
from t2core.paths import cache_dir, t2_home
from t2core.sampling.base import (
    Completion,
    GenerationConfig,
    RowExperts,
    Sampler,
    SVFWeights,
    check_candidates,
    picked_candidates,
    register_sampler,
)
from t2core.sampling.hf import encode_choices, render_prompt
from t2core.serving.vllm_env import ServerSettings, last_line, stop_group, vllm_version
from t2core.serving.wire import BASE, expert_id, pack_tensor

CALL_TIMEOUT_S = 3600.0


def served_dir(loaded: LoadedModel) -> Path:
    """A directory of config + safetensors with exactly `loaded`'s weights, for the server to load:
    the model's own (converted or downloaded) directory, else a copy written once, keyed by the weights hash."""
    if loaded.directory is not None:
        return loaded.directory
    dest = cache_dir() / "served" / loaded.weights_hash[:24]
    if not (dest / "config.json").is_file():
        with atomic_dir(dest) as tmp:
            loaded.model.save_pretrained(tmp, safe_serialization=True)
    return dest


def _import_root() -> Path:
    """A directory holding only a link to this `t2core`: the server's PYTHONPATH, so the vLLM environment
    sees the project's pure modules and none of the project environment's packages."""
    root = cache_dir() / "vllm-path"
    link, target = root / "t2core", Path(__file__).resolve().parents[1]
    if not (link.is_symlink() and link.resolve() == target):
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".t2core.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)
    return root


class VLLMServer:
    """One server process: start, requests, stop. Owned by the process-wide pool (`server_for`)."""

    def __init__(self, loaded: LoadedModel, dtype: str, settings: ServerSettings) -> None:
        python = settings.interpreter()  # a missing environment fails here, before anything starts
        self.loaded, self.dtype = loaded, dtype
        self.active = BASE
        self.last_swap: dict = {}  # the server's account of the last swap (bench/vllm.py shows where it went)
        self.svd_names: set[str] = set()  # matrices whose factors the server holds
        self.lock = threading.RLock()  # one expert swap + its requests at a time (flows may run tasks in threads)
        logs = t2_home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"vllm-{loaded.weights_hash[:12]}-{dtype}.log"
        ours, theirs = socket.socketpair()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        # this process waits on every call, so by default the two take the cores in turns (t2core/threads.py)
        self.threads_key = f"vllm-{id(self)}"
        env.update(threads.child_env(threads.claim(self.threads_key, turns=settings.threads == "turns")))
        env.update(PYTHONPATH=str(_import_root()), VLLM_ENABLE_V1_MULTIPROCESSING="0",
                   VLLM_CPU_KVCACHE_SPACE=str(settings.kv_cache_gib), VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
                   TOKENIZERS_PARALLELISM="false")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(python), "-m", "t2core.serving.vllm_server", str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # its own process group: `close` ends it and anything it started
        theirs.close()
        self.conn = Connection(ours.detach())
        limit = min(settings.max_model_len, int(getattr(loaded.model.config, "max_position_embeddings", 1 << 30)))
        try:
            self.info = self.call("start", timeout=settings.start_timeout_s, model_dir=str(served_dir(loaded)),
                                  dtype=dtype, seed=loaded.seed, max_model_len=limit,
                                  enforce_eager=settings.enforce_eager,
                                  gpu_memory_utilization=settings.gpu_memory_utilization,
                                  lora_rank=settings.lora_rank, max_loras=settings.max_loras,
                                  lora_targets=list(settings.lora_targets))
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, op: str, timeout: float = CALL_TIMEOUT_S, **args):
        if self.proc.poll() is not None:
            raise errors.ModelError(f"the vLLM server exited ({self.proc.returncode}); its log: {self.log_path}")
        self.conn.send((op, args))
        deadline = time.monotonic() + timeout
        try:
            while not self.conn.poll(1.0):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    why = f"exited ({self.proc.returncode})" if self.proc.poll() is not None else \
                        f"did not answer {op!r} within {timeout:.0f}s"
                    raise errors.ModelError(f"the vLLM server {why}: {last_line(self.log_path)} (log: {self.log_path})")
            status, payload = self.conn.recv()
        except BaseException:  # e.g. Ctrl-C mid-request: its answer would be read as the next one's; start afresh
            self.close()
            raise
        if status != "ok":
            raise errors.ModelError(f"the vLLM server failed {op!r}: {payload} (log: {self.log_path})")
        return payload

    def activate(self, svf: SVFWeights | None) -> str:
        """Load `svf` (None: the base weights) and return its id, as the server confirmed it."""
        if svf is None:
            eid, scales, base_hash = BASE, None, self.loaded.weights_hash
        else:
            if svf.base_weights_hash != self.loaded.weights_hash:
                raise errors.ArtifactError(f"SVF vectors for base weights {svf.base_weights_hash[:12]} sent to a vLLM "
                                           f"server holding {self.loaded.weights_hash[:12]}.")
            eid, base_hash = expert_id(svf.base_weights_hash, svf.scale), svf.base_weights_hash
            scales = {n: pack_tensor(v) for n, v in svf.scale.items()}
            self._decomposition(set(svf.scale))
        if eid != self.active:
            out = self.call("set_expert", eid=eid, base_hash=base_hash, scales=scales)
            if out["active"] != eid:
                raise errors.ModelError(f"the vLLM server reports expert {out['active']} active, not {eid}.")
            self.active, self.last_swap = eid, out  # out: seconds, build_seconds (W' built), reloaded (tensors)
        return eid

    def _decomposition(self, names: set[str]) -> None:
        """Send the server the SVD factors these vectors need (once per matrix), then check it holds
        the very matrices this process holds."""
        if names <= self.svd_names:  # already there: no store lookup (verifying the file re-hashes ~0.4 GB)
            return
        from t2core.artifacts import ArtifactStore
        from t2core.svd import FILE, KIND, ensure_svd, target_spec_for

        store = ArtifactStore()
        info = ensure_svd(self.loaded, target_spec_for(self.loaded, names), store)
        sha = store.manifest(KIND, info.key).files[FILE]["sha256"]
        out = self.call("load_svd", path=str(info.path), sha256=sha, names=sorted(info.shapes))
        mine = tensors_hash({f"{n}.weight": self.loaded.model.get_submodule(n).weight.detach().float()
                             for n in sorted(info.shapes)})
        if out["fingerprint"] != mine:
            raise errors.ArtifactError(f"the vLLM server loaded other weights than this process's {self.loaded.alias!r} "
                                       f"(targeted matrices hash {out['fingerprint'][:12]} vs {mine[:12]}); delete "
                                       f"{served_dir(self.loaded)} if it is a stale copy, and retry.")
        self.svd_names |= set(info.shapes)

    def close(self) -> None:
        threads.release(getattr(self, "threads_key", ""))
        proc = getattr(self, "proc", None)
        if proc is None:
            return
        if proc.poll() is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
            return
        with contextlib.suppress(OSError, EOFError, ValueError):
            self.conn.send(("close", {}))
            if self.conn.poll(30):
                self.conn.recv()
        stop_group(proc)
        with contextlib.suppress(OSError):
            self.conn.close()


_SERVERS: dict[tuple, VLLMServer] = {}
_POOL_LOCK = threading.Lock()


def server_for(loaded: LoadedModel, dtype: str, settings: ServerSettings) -> VLLMServer:
    """The running server of (base weights, dtype, settings) in this process, started on first use."""
    key = (loaded.weights_hash, dtype, str(loaded.directory), settings)
    with _POOL_LOCK:
        srv = _SERVERS.get(key)
        if srv is None or srv.proc.poll() is not None:
            srv = _SERVERS[key] = VLLMServer(loaded, dtype, settings)
        return srv


@atexit.register
def stop_servers() -> None:
    """Stop every server this process started (also run at interpreter exit)."""
    with _POOL_LOCK:
        while _SERVERS:
            _SERVERS.popitem()[1].close()


def _groups(svf: SVFWeights | None, rows: RowExperts | None, n: int) -> list[tuple[SVFWeights | None, list[int]]]:
    """(expert, conversations) pairs: one per distinct row of `rows` (vLLM serves one set of weights at a time)."""
    if rows is None:
        return [(svf, list(range(n)))]
    flat = rows.weights.float().reshape(n, -1)
    distinct, group = torch.unique(flat, dim=0, return_inverse=True)  # (G, K[·L]), (n,)
    return [(rows.bank.mixture(distinct[g].reshape(rows.weights.shape[1:])),
             [i for i in range(n) if int(group[i]) == g]) for g in range(distinct.shape[0])]


class VLLMSampler(Sampler):
    name = "vllm"
    backend = "vllm"
    receives_svf = True
    takes_rows = True  # served grouped by expert (module docstring)

    def __init__(self, loaded: LoadedModel, settings: ServerSettings | None = None) -> None:
        self.loaded, self.settings = loaded, settings or ServerSettings()
        self.settings.interpreter()  # a missing environment is one clear error when the sampler is made

    @classmethod
    def backend_version(cls) -> str:
        return vllm_version(ServerSettings().interpreter())

    def server(self, dtype: str) -> VLLMServer:
        return server_for(self.loaded, dtype, self.settings)

    def generate(self, conversations, cfg: GenerationConfig, progress=None, svf: SVFWeights | None = None,
                 rows: RowExperts | None = None) -> list[Completion]:
        self.check_rows(rows, len(conversations))
        if cfg.max_new_tokens is None:
            raise errors.ConfigError("GenerationConfig.max_new_tokens is None: resolve it to the task's default first "
                                     "(EvalConfig.resolved) before generating.")
        tok, srv = self.loaded.tokenizer, self.server(cfg.dtype)
        prompts = [tok(render_prompt(tok, m), add_special_tokens=False)["input_ids"] for m in conversations]
        results: list[Completion | None] = [None] * len(prompts)
        for eid, idx, loras in self._routes(srv, svf, rows, len(prompts)):
            self._generate_group(srv, eid, idx, loras, prompts, cfg, results, progress)
        return results  # type: ignore[return-value]

    def _routes(self, srv: VLLMServer, svf: SVFWeights | None, rows: RowExperts | None, n: int):
        """(the expert the server must hold, conversations, {conversation: LoRA adapter} or None) for each
        group the server answers at once, each under the server's lock: here one group per distinct expert,
        whose weights are swapped in first (module docstring)."""
        for expert, idx in _groups(svf, rows, n):
            with srv.lock:
                yield srv.activate(expert), idx, None

    def _generate_group(self, srv: VLLMServer, eid: str, idx: list[int], loras: dict | None,
                        prompts: list[list[int]], cfg: GenerationConfig, results: list, progress) -> None:
        tok = self.loaded.tokenizer
        for start in range(0, len(idx), cfg.batch_size):  # at most batch_size sequences in flight, as hf
            part = idx[start : start + cfg.batch_size]
            out = srv.call("generate", prompts=[prompts[i] for i in part], max_tokens=cfg.max_new_tokens,
                           temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed,
                           stop_ids=[tok.eos_token_id], seeds=part, expect=eid,
                           loras=None if loras is None else [loras[i] for i in part])
            for i, ids in zip(part, out["ids"], strict=True):
                results[i] = Completion(tok.decode(ids, skip_special_tokens=True), len(prompts[i]), len(ids),
                                        prompts[i], ids)
            if progress:
                progress(len(part))

    def choose(self, conversations, candidates, cfg: GenerationConfig, progress=None, svf: SVFWeights | None = None,
               rows: RowExperts | None = None) -> list[Completion]:
        """Each candidate's summed token log-prob from vLLM's prompt log-probs of prompt + candidate."""
        self.check_rows(rows, len(conversations))
        check_candidates(conversations, candidates)
        srv = self.server(cfg.dtype)
        prompts, cands = encode_choices(self.loaded.tokenizer, conversations, candidates)
        logprobs: list[torch.Tensor | None] = [None] * len(prompts)
        for eid, idx, loras in self._routes(srv, svf, rows, len(prompts)):
            self._score_group(srv, eid, idx, loras, prompts, cands, cfg, logprobs, progress)
        return picked_candidates(candidates, prompts, cands, logprobs, cfg)  # type: ignore[arg-type]

    def _score_group(self, srv: VLLMServer, eid: str, idx: list[int], loras: dict | None, prompts: list[list[int]],
                     cands: list[list[list[int]]], cfg: GenerationConfig, logprobs: list, progress) -> None:
        for start in range(0, len(idx), cfg.batch_size):
            part = idx[start : start + cfg.batch_size]
            seqs = [prompts[i] + c for i in part for c in cands[i]]
            starts = [len(prompts[i]) for i in part for _ in cands[i]]
            out = srv.call("score", seqs=seqs, starts=starts, expect=eid,
                           loras=None if loras is None else [loras[i] for i in part for _ in cands[i]])
            sums = torch.tensor(out["sums"], dtype=torch.float32)
            for i, lp in zip(part, group_log_softmax(sums, [len(cands[i]) for i in part]), strict=True):
                logprobs[i] = lp
            if progress:
                progress(len(part))


register_sampler("vllm", VLLMSampler)
