"""`proc` sampler: the `hf` sampler on its own copy of the model in another process, fed vectors only.

This is the shape of a remote backend. A vLLM server cannot share an environment with Prefect,
so it holds its own base model. The worker here loads the same base model itself, checks its
weights hash, keeps its own SVD of the targeted matrices (from the artifact store), and receives
an expert only as `SVFWeights` with each call. Paper §3.1: W' = U diag(s ⊙ z) Vᵀ needs nothing
but z. Evaluation and REINFORCE training through it give exactly what the in-process `hf`
sampler gives (tests/test_sampling.py), which is what shows the vectors are enough.

    make_sampler("proc", loaded=loaded)   # `t2 eval --sampler proc`, `t2 train --sampler proc`
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os

import torch

from t2core import errors
from t2core.models.registry import LoadedModel
from t2core.sampling.base import GenerationConfig, Sampler, SVFWeights, register_sampler

START_TIMEOUT_S = 600.0  # the worker loads (or converts) the model and imports torch
CALL_TIMEOUT_S = 3600.0


class ProcSampler(Sampler):
    name = "proc"
    backend = "hf"  # the hf sampler on its own copy of the model: bitwise the same outputs (tested)
    receives_svf = True

    def __init__(self, loaded: LoadedModel) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs torch threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, name="t2-proc-sampler", daemon=True,
                                 args=(child, loaded.alias, loaded.seed, loaded.weights_hash,
                                       torch.get_num_threads()))
        self._proc.start()
        child.close()
        try:
            self._call("ready", timeout=START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def _call(self, op: str, *args, timeout: float = CALL_TIMEOUT_S):
        if self._proc is None:
            raise errors.ModelError("the proc sampler was closed; make a new one.")
        self._conn.send((op, args))
        if not self._conn.poll(timeout):
            self.close()
            raise errors.ModelError(f"the proc sampler's worker did not answer {op!r} within {timeout:.0f}s.")
        try:
            status, payload = self._conn.recv()
        except EOFError:
            self.close()
            raise errors.ModelError("the proc sampler's worker died (see its output above).") from None
        if status == "ok":
            return payload
        kind, message = payload
        exc = getattr(errors, kind, None)
        if isinstance(exc, type) and issubclass(exc, errors.T2Error) and exc is not errors.UnknownNameError:
            raise exc(message)
        raise errors.ModelError(f"the proc sampler's worker failed: {kind}: {message}")

    def generate(self, conversations, cfg: GenerationConfig, progress=None, svf: SVFWeights | None = None,
                 rows=None):
        self.check_rows(rows, len(conversations))
        out = self._call("generate", conversations, cfg, svf)
        if progress:
            progress(len(out))
        return out

    def choose(self, conversations, candidates, cfg: GenerationConfig, progress=None, svf: SVFWeights | None = None,
               rows=None):
        self.check_rows(rows, len(conversations))
        out = self._call("choose", conversations, candidates, cfg, svf)
        if progress:
            progress(len(out))
        return out

    def close(self) -> None:
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("close", ()))
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=10)
        self._conn.close()

    def __del__(self) -> None:
        self.close()


def _serve(conn, alias: str, seed: int, weights_hash: str, threads: int) -> None:
    """The worker: its own model, its own SVDs, W' built from the vectors of each call."""
    torch.set_num_threads(threads)  # the same thread count as the caller: bitwise-equal matmuls
    from t2core.models import load_model
    from t2core.sampling.hf import HFSampler
    from t2core.svd import target_spec_for
    from t2core.svf.apply import materialised_scales
    from t2core.svf.placement import resident_svd

    try:
        loaded = load_model(alias, seed=seed)
        if loaded.weights_hash != weights_hash:
            raise errors.ModelError(f"the proc sampler loaded {alias!r} with weights {loaded.weights_hash[:12]}, "
                                    f"not the caller's {weights_hash[:12]}: give it the same model and seed.")
    except BaseException as e:  # noqa: B036 - reported to the caller, which raises it
        conn.send(("error", (type(e).__name__, str(e))))
        return
    local = HFSampler(loaded)

    def svd_for(names: set[str]) -> dict:
        # the smallest target spec that holds every vector; its factors read (and verified) once, on the
        # model's devices (`resident_svd`), not at every call
        return resident_svd(loaded, target_spec_for(loaded, names))

    def weights(svf: SVFWeights | None, cfg: GenerationConfig):
        if svf is None:
            return contextlib.nullcontext()
        if svf.base_weights_hash != loaded.weights_hash:
            raise errors.ArtifactError(f"SVF vectors for base weights {svf.base_weights_hash[:12]} sent to a "
                                       f"sampler holding {loaded.weights_hash[:12]}.")
        return materialised_scales(loaded.model, svd_for(set(svf.scale)), svf, dtype=cfg.dtype,
                                   origin=loaded.directory)

    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            return
        if op == "close":
            return
        try:
            if op == "ready":
                out: object = os.getpid()
            elif op == "generate":
                convs, cfg, svf = args
                with weights(svf, cfg):
                    out = local.generate(convs, cfg)
            elif op == "choose":
                convs, cands, cfg, svf = args
                with weights(svf, cfg):
                    out = local.choose(convs, cands, cfg)
            else:
                raise errors.ConfigError(f"unknown request {op!r}")
            conn.send(("ok", out))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the caller
            conn.send(("error", (type(e).__name__, str(e))))


register_sampler("proc", ProcSampler)
