"""Which weights an evaluation runs with: the base model, an SVF expert, or a PEFT adapter.

One resolver serves the CLI and the flows, so a catalog `variant` always means the same
thing: `base`, `svf:<expert artifact key>` (paper §3.2), or `<method>:<adapter id>` for the
baselines (`lora` = LoRA-NTP, `lora-pg` = LoRA trained by the REINFORCE loop, `ia3`, `dora`).
Everything that can fail (missing or corrupted file, expert for another model) fails here,
before any catalog row is written; the heavy part (the SVD load, PEFT injection) happens
only when `weights()` is entered, i.e. when generation actually runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError
from t2core.models.registry import LoadedModel
from t2core.sampling.base import Sampler, SVFWeights

WeightsFactory = Callable[[], contextlib.AbstractContextManager]


@dataclass(frozen=True)
class Variant:
    name: str  # the catalog variant: base | svf:<key> | lora:<id> | lora-pg:<id> | ia3:<id> | dora:<id>
    weights: WeightsFactory | None  # None: the base weights
    vectors: Callable[[], SVFWeights] | None = None  # SVF experts: z as vectors, for samplers that take them

    @property
    def method(self) -> str:
        return self.name.split(":", 1)[0]

    def apply_with(self, sampler: Sampler) -> dict:
        """`evaluate` keyword arguments that apply this variant through `sampler`: the weights
        materialised in the caller's model, or, for a sampler with its own copy of the model
        (`receives_svf`), the expert's vectors sent with every call."""
        if not sampler.receives_svf:
            return {"weights": self.weights}
        if self.weights is None:
            return {}
        if self.vectors is None:
            raise ConfigError(f"sampler {sampler.name!r} takes SVF experts as vectors only; evaluate {self.name!r} "
                              "with the hf sampler.")
        return {"svf": self.vectors()}


BASE = Variant("base", None)


def resolve_variant(loaded: LoadedModel, expert: str | None = None, adapter: str | None = None,
                    dtype: str = "float32", store: ArtifactStore | None = None) -> Variant:
    """The variant for an SVF expert (file or expert id), a PEFT adapter id, or neither (base)."""
    if expert and adapter:
        raise ConfigError(f"both an expert ({expert!r}) and an adapter ({adapter!r}) given; evaluate one at a time.")
    store = store or ArtifactStore()
    if expert:
        return _expert_variant(loaded, expert, dtype, store)
    if adapter:
        return _adapter_variant(loaded, adapter, store)
    return BASE


def _expert_variant(loaded: LoadedModel, ref: str, dtype: str, store: ArtifactStore) -> Variant:
    from t2core.experts import expert_variant, resolve_expert
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import load_expert, materialised, svf_weights

    path = resolve_expert(ref, store)  # verified: the store's manifest, or the file's own checksum
    policy, header = load_expert(path, loaded.weights_hash)  # wrong model / NaN / broken file: fail now

    def svd():
        return load_svd(ensure_svd(loaded, policy.cfg.targets, store=store), store=store)

    @contextlib.contextmanager
    def weights() -> Iterator[None]:
        with materialised(loaded.model, svd(), policy, dtype=dtype):
            yield

    return Variant(expert_variant(header, policy), weights, lambda: svf_weights(policy, svd(), loaded.weights_hash))


def _adapter_variant(loaded: LoadedModel, adapter_id: str, store: ArtifactStore) -> Variant:
    from t2core.baselines.peft_ntp import KIND, with_adapter

    if Path(adapter_id).name != adapter_id:
        raise ConfigError(f"adapter {adapter_id!r} must be an adapter id (from `t2 catalog ls experts`), not a path.")
    store.verify(KIND, adapter_id)  # clear error when missing or corrupted
    meta = store.manifest(KIND, adapter_id).meta
    if meta.get("weights_hash") not in (None, loaded.weights_hash):
        raise ConfigError(f"adapter {adapter_id!r} was trained on weights {meta['weights_hash'][:12]}, not on "
                          f"{loaded.alias} ({loaded.weights_hash[:12]}); evaluate it with the model it was trained on.")
    method = meta.get("method", "lora")

    @contextlib.contextmanager
    def weights() -> Iterator[None]:
        # PEFT injects its layers into loaded.model in place, so the sampler's model uses them.
        with with_adapter(loaded, path=store.path(KIND, adapter_id)):
            yield

    return Variant(f"{method}:{adapter_id}", weights)
