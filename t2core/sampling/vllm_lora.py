"""`vllm-lora` sampler: vLLM's multi-adapter engine gives each conversation its own expert, as a LoRA.

Why: the `vllm` sampler swaps an expert's weights into the engine (W' = U diag(s ⊙ z) Vᵀ rebuilt and
reloaded), so a batch whose conversations want different experts is answered group after group, each behind
a swap (29-34% of an answer on Qwen, bench/vllm.py). An expert's change is already a singular value
decomposition, ΔW = U diag(s ⊙ (m − 1)) Vᵀ (paper §3.1), whose best rank-r approximation keeps the r largest
|sᵢ(mᵢ − 1)| (`t2core/export/lowrank.py`): a LoRA adapter, which vLLM applies per request beside the base
weights, several different ones in one batch, with no swap. A mixture Σₖ αₖ zₖ (paper §3.3) is one adapter
too, since SVF is linear in z.

What it costs is the truncation: each adapter has the smallest rank whose relative Frobenius error of ΔW over
all its matrices is at most `TOL`, capped at the server's largest rank (vLLM's 512, or the model's own
largest matrix rank, rounded up to a rank vLLM takes); the rank and the error are in the adapter's manifest.
Its answers are therefore not the exact expert's, so its runs have ids of their own (backend
`vllm-lora-tol0.05`), never shared with the `vllm` or `hf` samplers' runs.

Adapters are written once per (expert vectors, tolerance, cap) under `T2_HOME/cache/lora/<content id>`, as a
sealed PEFT package (`t2core/export/package.py`), and verified when reused.

    make_sampler("vllm-lora", loaded=loaded)   # `t2 api --sampler vllm-lora`, `t2 eval --sampler vllm-lora`
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from torch import nn

from t2core.hashing import tensors_hash
from t2core.ids import content_id
from t2core.models.registry import LoadedModel
from t2core.paths import t2_home
from t2core.sampling.base import RowExperts, SVFWeights, register_sampler
from t2core.sampling.vllm import VLLMSampler, VLLMServer, _groups
from t2core.serving.vllm_env import ServerSettings

TOL = 0.05  # relative Frobenius error of ΔW allowed per adapter (`t2 experts export --rank auto`'s default)
RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts
_log = logging.getLogger(__name__)


def adaptable(model: nn.Module) -> tuple[str, ...]:
    """The leaf names of the model's linear layers but the output head (`ServerSettings.lora_targets`)."""
    return tuple(sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, nn.Linear) and "lm_head" not in n}))


def slot_rank(model: nn.Module) -> int:
    """The rank every adapter slot of the server has: the model's largest matrix rank (min(out, in) of its
    linear layers but the output head), rounded up to a rank vLLM takes, at most vLLM's largest."""
    ranks = [min(m.weight.shape) for n, m in model.named_modules() if isinstance(m, nn.Linear) and "lm_head" not in n]
    need = max(ranks, default=RANKS[0])
    return next((r for r in RANKS if r >= need), RANKS[-1])


class LoraAdapters:
    """Experts as LoRA adapters of one base model, each written once under `T2_HOME/cache/lora/<content id>`
    (a sealed PEFT package) and checked against its manifest once per process. The `vllm-lora` sampler and
    `t2 api --backend vllm` (vLLM's own OpenAI server, t2core/serving/vllm_openai.py) both take their adapters
    from here, so the same expert is the same adapter, under the same name, for both."""

    def __init__(self, loaded: LoadedModel, cap: int, tol: float | None = None) -> None:
        self.loaded, self.cap, self._tol = loaded, cap, tol
        self._svd: dict = {}  # matrix name -> (U, s, V) on the host, read from the SVD store once
        self._made = threading.Lock()  # one adapter written or checked at a time (threads may want the same)
        self._verified: set[str] = set()  # adapter folders checked against their manifest by this process

    @property
    def tol(self) -> float:
        """The tolerance given, else the module's `TOL` as it is now."""
        return TOL if self._tol is None else self._tol

    def adapter(self, expert: SVFWeights | None) -> list[str] | None:
        """[name, directory] of `expert`'s LoRA adapter, written on first use; None for the base weights.
        Matrices the expert leaves as they are (m = 1) are not in it, so the same expert has the same adapter
        whatever others it is batched with."""
        from t2core.errors import ArtifactError

        if expert is None:
            return None
        if expert.base_weights_hash != self.loaded.weights_hash:
            raise ArtifactError(f"SVF vectors for base weights {expert.base_weights_hash[:12]} sent to the LoRA "
                                f"adapters of {self.loaded.alias} (weights {self.loaded.weights_hash[:12]}).")
        scale = {n: m for n, m in expert.scale.items() if not bool((m == 1).all())}
        if not scale:
            return None
        key = content_id([expert.base_weights_hash, tensors_hash(scale), self.tol, self.cap])
        dest = t2_home() / "cache" / "lora" / key
        with self._made:
            if str(dest) not in self._verified:
                if not dest.exists():
                    try:
                        self._write(scale, dest)
                    except ArtifactError:
                        if not dest.exists():  # not another process that wrote it first
                            raise
                self._check(dest)
                self._verified.add(str(dest))
        return [key, str(dest)]

    def _write(self, scale: dict, dest) -> None:
        # imported here: t2core.export reads stored experts (t2core.svf), which imports this package
        from t2core.export.lowrank import smallest_rank, spectra
        from t2core.export.package import FORMAT, PEFT_LORA
        from t2core.export.peft_lora import write_adapter

        svd = self._factors(set(scale))
        ds = spectra(scale, svd)
        rank = min(smallest_rank(ds, self.tol), self.cap)
        man = {"format": FORMAT, "kind": PEFT_LORA, "expert_id": dest.name, "method": "svf",
               "model": {"alias": self.loaded.alias, "weights_hash": self.loaded.weights_hash},
               "exported_by": f"t2's LoRA adapters for vLLM (tolerance {self.tol}, rank at most {self.cap})"}
        made = write_adapter(scale, svd, dest, rank, self.tol, man)
        if made.truncation.error > self.tol:
            _log.warning("vllm-lora: the adapter of rank %d (the server's largest) leaves %.3f of this expert's "
                         "change out, more than the tolerance %.2f; its answers may differ from the exact expert's "
                         "(%s).", made.rank, made.truncation.error, self.tol, dest)

    @staticmethod
    def _check(dest) -> None:
        """Every file of the adapter against its manifest's sha256 (once per process and adapter)."""
        from t2core.errors import ArtifactError
        from t2core.export.package import PEFT_LORA, read_package

        try:
            read_package(dest, kind=PEFT_LORA)
        except ArtifactError as e:
            raise ArtifactError(f"{e} (a LoRA adapter t2 wrote for vLLM; delete {dest} and it is written "
                                "again)") from e

    def _factors(self, names: set[str]) -> dict:
        """U, s, V of these matrices of the base weights, from the project's SVD store (made if missing)."""
        missing = names - set(self._svd)
        if missing:
            from t2core.artifacts import ArtifactStore
            from t2core.svd import ensure_svd, load_svd, target_spec_for

            store = ArtifactStore()
            info = ensure_svd(self.loaded, target_spec_for(self.loaded, missing), store)
            got = load_svd(info.key, store)
            self._svd.update({n: tuple(t.detach().float().cpu() for t in got[n]) for n in missing})
        return {n: self._svd[n] for n in names}


class VLLMLoraSampler(VLLMSampler):
    name = "vllm-lora"
    backend = f"vllm-lora-tol{TOL}"  # truncated experts: answers of their own (module docstring)
    mixes_rows = True  # conversations with different experts are one call: callers need not group them
    exact = False  # serving and evaluation only: never training rollouts or a few-shot search's fitness

    def __init__(self, loaded: LoadedModel, settings: ServerSettings | None = None) -> None:
        self.cap = slot_rank(loaded.model)
        super().__init__(loaded, replace(settings or ServerSettings(), lora_rank=self.cap,
                                         lora_targets=adaptable(loaded.model)))
        self.adapters = LoraAdapters(loaded, self.cap)

    def _routes(self, srv: VLLMServer, svf: SVFWeights | None, rows: RowExperts | None, n: int):
        """Every conversation in one group on the base weights, each with its expert's adapter (or none). The
        adapters are written before the server's lock is taken: another thread's requests are not held up."""
        loras = {}
        for expert, idx in _groups(svf, rows, n):
            adapter = self.adapter(expert)
            loras.update({i: adapter for i in idx})
        with srv.lock:
            yield srv.activate(None), list(range(n)), loras  # the base weights: the adapters carry the experts

    def adapter(self, expert: SVFWeights | None) -> list[str] | None:
        """[name, directory] of `expert`'s adapter (`LoraAdapters.adapter`)."""
        return self.adapters.adapter(expert)


register_sampler("vllm-lora", VLLMLoraSampler)
