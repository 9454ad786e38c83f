"""The vLLM server process: one base model, its SVD factors, experts received as vectors (paper §3.1).

Run by the `vllm` sampler (`t2core/sampling/vllm.py`) with the Python of the vLLM environment:

    python -m t2core.serving.vllm_server FD PARENT_PID

FD is one end of a socket pair; PARENT_PID the client, whose death ends this process. What it holds:

- the base model, loaded by vLLM from the directory the client names (in-process engine,
  `VLLM_ENABLE_V1_MULTIPROCESSING=0`: no engine subprocess, so no grandchild can be orphaned);
- the SVD factors U, s, V of the targeted matrices, read from the project's SVD store after checking
  the file's sha256 against the store's manifest (`load_svd`);
- the original checkpoint tensors of every vLLM layer an expert touches: restoring the base from
  U diag(s) Vᵀ would not be exact (bf16 especially), and vLLM fuses gate/up and q/k/v into one
  layer that must be reloaded whole (a half-loaded fused layer is processed with garbage in the
  other half).

An expert arrives as its multiplier vectors; W' = U diag(s ⊙ z) Vᵀ is built here in fp32 and loaded
through the worker's `reload_weights` (on CPU the linear layers are repacked into oneDNN handles, so
writing `.weight` in place does not work), then the prefix cache is reset (cached KV of the old
weights would otherwise be reused). Every request names the expert it expects; a mismatch is an
error, never a silent answer from stale weights.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

import torch

from t2core.hashing import sha256_file, tensors_hash
from t2core.serving.wire import BASE, expert_id, unpack_tensor


def _watch_parent(ppid: int) -> None:
    """End this process (and anything it started) as soon as the client is gone, even after kill -9."""
    while True:
        if os.getppid() != ppid:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        time.sleep(0.5)


class Server:
    def __init__(self, model_dir: str, dtype: str, seed: int, max_model_len: int, enforce_eager: bool,
                 gpu_memory_utilization: float, lora_rank: int = 0, max_loras: int = 4,
                 lora_targets: list[str] | None = None) -> None:
        from vllm import LLM

        logging.getLogger("vllm.model_executor.model_loader.reload").setLevel(logging.ERROR)  # partial reloads warn
        t0 = time.perf_counter()
        self.llm = LLM(model=model_dir, dtype=dtype, seed=seed, enforce_eager=enforce_eager,
                       skip_tokenizer_init=True,  # the client tokenises and decodes with its own tokenizer
                       generation_config="vllm",  # no sampling defaults from the model directory
                       max_model_len=max_model_len, enable_prefix_caching=True,
                       gpu_memory_utilization=gpu_memory_utilization,
                       # LoRA adapters per request (the `vllm-lora` sampler): vLLM's multi-adapter kernels
                       **({"enable_lora": True, "max_lora_rank": lora_rank, "max_loras": max_loras,
                           "max_cpu_loras": max_loras, "lora_target_modules": lora_targets or None}
                          if lora_rank else {}))
        self.lora_ids: dict[str, int] = {}  # adapter name -> vLLM's integer id for it (1, 2, ...)
        self.start_seconds = time.perf_counter() - t0
        self.model_dir = model_dir
        self.low = torch.bfloat16 if dtype == "bfloat16" else None
        self.packed: dict[str, list[str]] = self.llm.collective_rpc(_packed_modules)[0]
        self.index = self._checkpoint_index()
        self.svd: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # name -> U (out,r), s (r,), V (in,r)
        self.originals: dict[str, torch.Tensor] = {}  # checkpoint tensor name -> as stored
        self.active = BASE
        self.modified: set[str] = set()  # layer groups holding something other than the originals

    # -- what the server holds ---------------------------------------------------------------------
    def _checkpoint_index(self) -> dict[str, str]:
        from safetensors import safe_open

        files = sorted(f for f in os.listdir(self.model_dir) if f.endswith(".safetensors"))
        if not files:
            raise FileNotFoundError(f"no .safetensors file in {self.model_dir}")
        index = {}
        for f in files:
            path = os.path.join(self.model_dir, f)
            with safe_open(path, "pt") as h:
                index.update({k: path for k in h.keys()})  # noqa: SIM118 - safe_open has no __iter__
        return index

    def group_of(self, name: str) -> str:
        """The vLLM layer a targeted matrix lives in: `...mlp.gate_proj` -> `...mlp.gate_up_proj`."""
        prefix, _, leaf = name.rpartition(".")
        for fused, members in self.packed.items():
            if leaf in members:
                return f"{prefix}.{fused}"
        return name

    def members(self, group: str) -> list[str]:
        """Checkpoint tensors of one vLLM layer (weights and biases of every fused part)."""
        prefix, _, leaf = group.rpartition(".")
        parts = self.packed.get(leaf, [leaf])
        return sorted(k for k in self.index for p in parts if k.startswith(f"{prefix}.{p}."))

    def load_svd(self, path: str, sha256: str, names: list[str]) -> dict:
        got = sha256_file(path)
        if got != sha256:
            raise ValueError(f"SVD file {path} has sha256 {got[:12]}…, the store's manifest says {sha256[:12]}…")
        from safetensors import safe_open

        build = self.low or torch.float32  # U and V kept in the dtype W' is built in: no cast per swap
        with safe_open(path, "pt") as f:
            for n in names:
                self.svd[n] = (f.get_tensor(f"{n}.U").to(build), f.get_tensor(f"{n}.S").float(),
                               f.get_tensor(f"{n}.V").to(build))
        wanted = {k for n in names for k in self.members(self.group_of(n))} - set(self.originals)
        for path_ in sorted({self.index[k] for k in wanted}):
            with safe_open(path_, "pt") as f:
                for k in sorted(wanted):
                    if self.index[k] == path_:
                        self.originals[k] = f.get_tensor(k)
        missing = [n for n in names if f"{n}.weight" not in self.originals]
        if missing:
            raise KeyError(f"the checkpoint in {self.model_dir} has no tensor {missing[0]}.weight")
        # what the client compares with its own model: the targeted matrices as loaded here, in fp32
        return {"fingerprint": tensors_hash({f"{n}.weight": self.originals[f"{n}.weight"].float() for n in names})}

    # -- experts -----------------------------------------------------------------------------------
    def set_expert(self, eid: str, base_hash: str, scales: dict | None) -> dict:
        if eid == self.active:
            return {"active": self.active, "seconds": 0.0, "reloaded": 0}
        t0 = time.perf_counter()
        vectors = {n: unpack_tensor(m) for n, m in (scales or {}).items()}
        got = BASE if scales is None else expert_id(base_hash, vectors)
        if got != eid:
            raise ValueError(f"expert {eid} arrived as {got}: the vectors were damaged in transit")
        unknown = sorted(set(vectors) - set(self.svd))
        if unknown:
            raise KeyError(f"no SVD factors for {unknown[0]}: send the decomposition first (load_svd)")
        new: dict[str, torch.Tensor] = {}
        for n, z in vectors.items():
            u, s, v = self.svd[n]
            w = self.originals[f"{n}.weight"]
            if z.shape != s.shape:
                raise ValueError(f"vector for {n} has length {z.shape[0]}, the matrix has {s.shape[0]} singular values")
            # (out, in) = U diag(s ⊙ z) Vᵀ; in bf16 when the engine rounds every weight to bf16 anyway (~3x faster)
            new[f"{n}.weight"] = ((u * (s * z).to(u.dtype)) @ v.T).to(self.low or w.dtype)
        built = time.perf_counter() - t0
        groups = {self.group_of(n) for n in vectors}
        weights = [(k, new.get(k, self.originals[k])) for g in sorted(groups | self.modified) for k in self.members(g)]
        if weights:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights),
                                                               "is_checkpoint_format": True})
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset its prefix cache after a weight update")
        self.active, self.modified = eid, groups
        return {"active": self.active, "seconds": time.perf_counter() - t0, "build_seconds": built,
                "reloaded": len(weights)}

    def _check(self, expect: str) -> None:
        if expect != self.active:
            raise ValueError(f"request for expert {expect} while {self.active} is loaded")

    # -- requests ----------------------------------------------------------------------------------
    def _loras(self, loras: list | None, n: int) -> list | None:
        """vLLM's LoRARequest for each prompt from the client's [name, adapter directory] (None: the base
        weights); a name keeps the integer id it got first, so vLLM reuses the adapter it loaded."""
        if loras is None:
            return None
        if len(loras) != n:
            raise ValueError(f"{len(loras)} adapters for {n} prompts")
        from vllm.lora.request import LoRARequest

        out = []
        for item in loras:
            if item is None:
                out.append(None)
                continue
            name, path = item
            if name not in self.lora_ids:  # loaded now, so a bad adapter fails this call before any generation
                req = LoRARequest(name, len(self.lora_ids) + 1, path)
                self.llm.llm_engine.add_lora(req)
                self.lora_ids[name] = req.lora_int_id
            out.append(LoRARequest(name, self.lora_ids[name], path))
        return out

    def generate(self, prompts: list[list[int]], max_tokens: int, temperature: float, top_p: float, seed: int,
                 stop_ids: list[int], seeds: list[int], expect: str, loras: list | None = None) -> dict:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self._check(expect)
        lora = self._loras(loras, len(prompts))
        params = [SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                 seed=None if temperature == 0 else seed * 1_000_003 + i,
                                 stop_token_ids=stop_ids, ignore_eos=True, detokenize=False)
                  for i in seeds]
        t0 = time.perf_counter()
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False,
                                 **({"lora_request": lora} if lora is not None else {}))
        return {"ids": [list(o.outputs[0].token_ids) for o in outs], "seconds": time.perf_counter() - t0,
                "active": self.active}

    def score(self, seqs: list[list[int]], starts: list[int], expect: str, loras: list | None = None) -> dict:
        """Σ_t log π(seq_t | seq_<t) over t >= start, per sequence (prompt log-probs, nothing generated)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self._check(expect)
        lora = self._loras(loras, len(seqs))
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params, use_tqdm=False,
                                 **({"lora_request": lora} if lora is not None else {}))
        sums = []
        for s, start, o in zip(seqs, starts, outs, strict=True):
            lps = o.prompt_logprobs  # position t: {token id: Logprob} of seq[t] (None at t = 0)
            sums.append(sum(lps[t][s[t]].logprob for t in range(max(start, 1), len(s))))
        return {"sums": sums, "active": self.active}


def _packed_modules(worker) -> dict[str, list[str]]:
    """vLLM's fused layers of this model (e.g. gate_up_proj <- gate_proj, up_proj), read in the worker."""
    model = worker.model_runner.get_model()
    return {k: list(v) for k, v in dict(getattr(model, "packed_modules_mapping", {}) or {}).items()}


def serve(conn: Connection) -> None:
    server: Server | None = None
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        if op == "close":
            conn.send(("ok", None))
            return
        try:
            if op == "start":
                server = Server(**args)
                import vllm

                out: object = {"pid": os.getpid(), "vllm": vllm.__version__, "torch": torch.__version__,
                               "start_seconds": server.start_seconds}
            elif server is None:
                raise RuntimeError(f"request {op!r} before start")
            elif op == "load_svd":
                out = server.load_svd(**args)
            elif op == "set_expert":
                out = server.set_expert(**args)
            elif op == "generate":
                out = server.generate(**args)
            elif op == "score":
                out = server.score(**args)
            else:
                raise ValueError(f"unknown request {op!r}")
            conn.send(("ok", out))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the client, which raises it
            traceback.print_exc()
            conn.send(("error", f"{type(e).__name__}: {e}"))


def main(argv: list[str]) -> int:
    fd, ppid = int(argv[1]), int(argv[2])
    from t2core import threads

    threads.configure()  # the share its client gave it (T2_THREADS)
    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True, name="t2-parent-watch").start()
    conn = Connection(fd)
    try:
        serve(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
