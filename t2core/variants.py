"""Which weights an evaluation runs with: the base model, an SVF expert, or a PEFT adapter.

Two steps, so a run can be identified without loading a model:
- `describe_variant(weights_hash, expert=, adapter=)` → `VariantRef`: verifies the reference
  (expert file against its hash, adapter against the store's manifest, both against the base
  weights) and says what will be applied, as structured data (method, expert ids, mixing
  weights) plus one string `name` the run id hashes: `base`, `svf:<expert id>` (paper §3.2), or
  `<method>:<adapter id>` for the baselines (`lora` = LoRA-NTP, `lora-pg` = LoRA trained by the
  REINFORCE loop, `ia3`, `dora`).
- `resolve_variant(loaded, ref)` → `Variant`: the same plus how to apply it to `loaded` (the
  SVD load and PEFT injection happen only when `weights()` is entered, i.e. when generation runs).
Everything that can fail fails in the first step, before any catalog row is written.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError
from t2core.ids import content_id
from t2core.methods import adapter_products
from t2core.models.registry import LoadedModel
from t2core.sampling.base import Sampler, SVFWeights

WeightsFactory = Callable[[], contextlib.AbstractContextManager]


@dataclass(frozen=True)
class VariantRef:
    """What is applied on top of the base weights, as the catalog records it (structured columns).

    `expert_ids` are SVF expert ids (`svf:<hex>`) or one adapter id; `alphas` the mixing weights of
    an SVF mixture (paper §3.3; empty for one expert)."""

    method: str = "base"  # base | svf | lora | lora-pg | ia3 | dora
    expert_ids: tuple[str, ...] = ()
    alphas: tuple[float, ...] = ()
    paths: tuple[str, ...] = field(default=(), compare=False)  # where the files lie (not identity)
    # two-pass runs (paper §3.3): the strategy and its settings that picked among `expert_ids` per sample
    dispatch: str = ""

    @classmethod
    def parse(cls, name: str) -> VariantRef:
        """The reference a catalog `variant` string stands for (no verification: for reading records)."""
        method, _, rest = name.partition(":")
        if method == "base" or not rest:
            return cls(method or "base")
        return cls(method, (name,) if method == "svf" else (rest,))

    @property
    def name(self) -> str:
        """The string run ids hash and the catalog's `variant` column shows."""
        if self.dispatch:  # per-sample experts chosen by a strategy: named by the strategy and the expert set
            return "adapt:" + content_id([self.dispatch, list(self.expert_ids), [float(a) for a in self.alphas]])
        if self.method == "base" or not self.expert_ids:  # base, or a training run before it produced anything
            return self.method
        if self.method == "svf" and len(self.expert_ids) == 1 and not self.alphas:
            return self.expert_ids[0]
        if self.method == "svf":  # a mixture z' = Σ α_k z_k (paper §3.3): named by its experts and weights
            return "svf-mix:" + content_id([list(self.expert_ids), [float(a) for a in self.alphas]])
        return f"{self.method}:{self.expert_ids[0]}"


BASE_REF = VariantRef()


def check_mixture(expert_ids: tuple[str, ...], alphas: tuple[float, ...]) -> None:
    """What SVF weights can be applied: none (base), one expert, or a mixture z' = Σ_k α_k z_k with
    one weight per expert (paper §3.3). A pass-1 decision and a resolved variant both hold to it."""
    if len(expert_ids) > 1 and len(alphas) != len(expert_ids):
        raise ConfigError(f"a mixture of {len(expert_ids)} experts needs one mixing weight each, got {len(alphas)}: "
                          "give alphas, or one expert.")
    if alphas and len(alphas) != len(expert_ids):
        raise ConfigError(f"{len(alphas)} mixing weights for {len(expert_ids)} experts.")


def describe_variant(weights_hash: str, expert: str | None = None, adapter: str | None = None,
                     store: ArtifactStore | None = None) -> VariantRef:
    """The verified reference for an SVF expert (id or file), a PEFT adapter id, or neither (base)."""
    if expert and adapter:
        raise ConfigError(f"both an expert ({expert!r}) and an adapter ({adapter!r}) given; evaluate one at a time.")
    store = store or ArtifactStore()
    if expert:
        from t2core.experts import ExpertRef

        ref = ExpertRef.resolve(expert, store)
        ref.check_model(weights_hash)
        return VariantRef("svf", (ref.id,), paths=(str(ref.path),))
    if adapter:
        return _adapter_ref(weights_hash, adapter, store)
    return BASE_REF


def describe_ref(weights_hash: str, ref: str | None, store: ArtifactStore | None = None) -> VariantRef:
    """One reference as users write it (the ids `t2 catalog ls experts` lists): `svf:<hex>` or an
    expert file for SVF experts, `<method>:<adapter id>` for the PEFT baselines, None for base."""
    if ref and ref.partition(":")[0] in adapter_products():
        return describe_variant(weights_hash, adapter=ref, store=store)
    return describe_variant(weights_hash, expert=ref, store=store)


def check_ref(ref: str | None, store: ArtifactStore | None = None) -> None:
    """A reference found and verified before any model loads (a command checks what it was given first);
    `describe_ref` then also checks that it belongs to the loaded model's weights."""
    if not ref:
        return
    store = store or ArtifactStore()
    if ref.partition(":")[0] in adapter_products():
        _stored_adapter(ref, store)
    else:
        from t2core.experts import ExpertRef

        ExpertRef.resolve(ref, store)


def _stored_adapter(adapter: str, store: ArtifactStore) -> tuple[str, str]:
    """(the method given, the adapter id) of `<method>:<id>` or `<id>`, the adapter verified in the store."""
    from t2core.adapters import KIND

    given_method, _, aid = adapter.rpartition(":")  # "lora:<id>" (the catalog's variant) or "<id>"
    if Path(aid).name != aid or not aid:
        raise ConfigError(f"adapter {adapter!r} must be an adapter id (from `t2 catalog ls experts`), not a path.")
    store.verify(KIND, aid)  # clear error when missing or corrupted
    return given_method, aid


def _adapter_ref(weights_hash: str, adapter: str, store: ArtifactStore) -> VariantRef:
    from t2core.adapters import KIND

    given_method, aid = _stored_adapter(adapter, store)
    meta = store.manifest(KIND, aid).meta
    if meta.get("weights_hash") not in (None, weights_hash):
        raise ConfigError(f"adapter {aid!r} was trained on weights {meta['weights_hash'][:12]}, not on this model "
                          f"({weights_hash[:12]}); evaluate it with the model it was trained on.")
    method = meta.get("method", "lora")
    if given_method and given_method != method:
        raise ConfigError(f"adapter {aid!r} is a {method} adapter, not {given_method}; pass {method}:{aid}.")
    return VariantRef(method, (aid,), paths=(str(store.path(KIND, aid)),))


@dataclass(frozen=True)
class Variant:
    ref: VariantRef
    weights: WeightsFactory | None  # None: the base weights
    vectors: Callable[[], SVFWeights] | None = None  # SVF experts: z as vectors, for samplers that take them
    # an SVF expert whose every scale is 1 (z = 1, the initial point, kept when no RL step beat the base on
    # validation): W' = U diag(s) Vᵀ = W, so its evaluations are the base model's
    identity: bool = False

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def method(self) -> str:
        return self.ref.method

    def using(self, sampler: Sampler) -> tuple[contextlib.AbstractContextManager, dict]:
        """(context to enter, keyword arguments for the sampler's calls) that run `sampler` with this
        variant: `with ctx: sampler.generate(..., **kw)`."""
        kw = self.apply_with(sampler)
        weights = kw.pop("weights", None)
        return (weights() if weights else contextlib.nullcontext()), kw

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


BASE = Variant(BASE_REF, None)


def resolve_variant(loaded: LoadedModel, ref: VariantRef | None = None, *, expert: str | None = None,
                    adapter: str | None = None, dtype: str = "float32",
                    store: ArtifactStore | None = None) -> Variant:
    """How to apply `ref` (or the expert / adapter named) to `loaded`."""
    store = store or ArtifactStore()
    ref = ref or describe_variant(loaded.weights_hash, expert, adapter, store)
    if ref.method == "base":
        return BASE
    if ref.method == "svf":
        return _expert_variant(loaded, ref, dtype, store)
    return _adapter_variant(loaded, ref, store)


def _expert_variant(loaded: LoadedModel, ref: VariantRef, dtype: str, store: ArtifactStore) -> Variant:
    """One SVF expert, or the mixture z' = Σ_k α_k z_k of several (paper §3.3) when `ref.alphas` are given."""
    import torch

    from t2core.experts import ExpertRef
    from t2core.svf import materialised, svf_weights
    from t2core.svf.bank import ExpertBank
    from t2core.svf.mixture import mixture_policy
    from t2core.svf.placement import place_policy, resident_svd

    check_mixture(ref.expert_ids, ref.alphas)
    policies = []
    for i, eid in enumerate(ref.expert_ids):
        expert = ExpertRef.resolve(ref.paths[i] if len(ref.paths) > i else eid, store)
        if expert.id != eid:
            raise ConfigError(f"expert file {expert.path} is now {expert.id}, not {eid}; rerun.")
        expert.check_model(loaded.weights_hash)
        policies.append(expert.load())
    targets = {p.cfg.targets for p in policies}
    if len(targets) != 1:
        raise ConfigError(f"experts of a mixture must target the same matrices, got {sorted(targets)}.")

    def svd():  # on the model's devices, read (and verified) once per model load, not at every use
        return resident_svd(loaded, policies[0].cfg.targets, store=store)

    @functools.cache
    def policy():  # on the model's devices, like the factors it scales
        if not ref.alphas:
            return place_policy(policies[0], loaded.model)
        s = svd()
        bank = ExpertBank.of([svf_weights(place_policy(p, loaded.model), s, loaded.weights_hash) for p in policies])
        return place_policy(mixture_policy(bank, torch.tensor(ref.alphas), policies[0].cfg.targets), loaded.model)

    @contextlib.contextmanager
    def weights() -> Iterator[None]:
        with materialised(loaded.model, svd(), policy(), dtype=dtype, origin=loaded.directory):
            yield

    identity = not ref.alphas and _all_ones(policies[0])
    return Variant(ref, weights, lambda: svf_weights(policy(), svd(), loaded.weights_hash), identity=identity)


def _all_ones(policy) -> bool:
    import torch

    return policy.cfg.param == "direct" and all(bool(torch.all(policy.z(n) == 1)) for n in policy.names)


def is_identity(ref: VariantRef, store: ArtifactStore | None = None) -> bool:
    """W' = W for `ref`, known without the model: one directly parametrised SVF expert whose every scale
    is 1 (z = 1, the initial point, kept when no RL step beat the base on validation)."""
    from t2core.experts import ExpertRef

    if ref.method != "svf" or len(ref.expert_ids) != 1 or ref.alphas:
        return False
    return _all_ones(ExpertRef.resolve(ref.paths[0] if ref.paths else ref.expert_ids[0], store).load())


def _adapter_variant(loaded: LoadedModel, ref: VariantRef, store: ArtifactStore) -> Variant:
    from t2core.adapters import KIND, with_adapter

    aid = ref.expert_ids[0]

    @contextlib.contextmanager
    def weights() -> Iterator[None]:
        # PEFT injects its layers into loaded.model in place, so the sampler's model uses them.
        with with_adapter(loaded, path=store.path(KIND, aid)):
            yield

    return Variant(ref, weights)
