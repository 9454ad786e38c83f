"""What a method is: how it makes an expert or adapter, how that is applied, and what its id covers.

Six methods (paper §3.2, §4.1, Tables 4 and 7): SVF by REINFORCE (the paper's), SVF by next-token
prediction, LoRA by next-token prediction (the paper's LoRA baseline), LoRA by REINFORCE, IA3 and DoRA.
Callers ask the entry instead of comparing names: which operation trains it (`objective`), where the
product is stored, which samplers can apply it, what to record as its targets and origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from t2core.registry import Registry

EXPERTS = "experts"  # the artifact kind of SVF experts (t2core/experts.py)
ADAPTERS = "adapters"  # the artifact kind of PEFT adapters (t2core/adapters.py)


@dataclass(frozen=True)
class Method:
    name: str  # its origin, as expert headers and the experts table record it
    product: str  # the variant that applies it: svf (W' = U diag(s ⊙ z) Vᵀ) or a PEFT adapter (lora, ia3, dora, lora-pg)
    objective: str  # pg: REINFORCE (t2ops.training, RLConfig) | ntp: next-token prediction (t2ops.baseline, NTPConfig)
    selector: str  # the value of the config's `method` field that selects it
    covers: str  # what its run id hashes, besides the weights, the task version and the data files
    targets: Callable[[dict, Any], str]  # the matrices it adapts, from the run's recorded config and the model family
    label: str = ""  # how the tables name it (Table 4: "SVF-PG mlp", Table 1: its row)
    ablated: bool = False  # one of Table 4's parameterisation × objective variants
    # a PEFT method's adapter config from its NTPConfig-like settings and the model family (None: not PEFT);
    # the method carries it, so a new PEFT method is one file and never falls through to another's config
    peft: Callable[[Any, Any], Any] | None = None

    @property
    def store(self) -> str:
        """The artifact kind its product is stored under."""
        return EXPERTS if self.product == "svf" else ADAPTERS

    @property
    def takes_vectors(self) -> bool:
        """Its product reaches a sampler with its own model copy (proc, vllm) as SVF vectors; a PEFT
        adapter is applied in-process only (the hf sampler)."""
        return self.product == "svf"


def peft_module():
    """The `peft` package, or one error line saying how to install it (imported lazily: an optional dep)."""
    try:
        import peft
    except ImportError as e:
        from t2core.errors import T2Error

        raise T2Error("the LoRA/IA3/DoRA baselines need `peft`: pip install 't2[baselines]'.") from e
    import warnings

    # peft asks every model it wraps for `is_gradient_checkpointing`, which transformers 5 deprecates with a
    # FutureWarning: a dozen identical lines per run that say nothing about t2's work (issue 36)
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    return peft


_METHODS: Registry[Method] = Registry("method", hint="t2core/methods/ has one file per method")


def register_method(m: Method) -> Method:
    return _METHODS.register(m.name, m)


def get_method(name: str) -> Method:
    return _METHODS.get(name)


def method_names() -> list[str]:
    return _METHODS.names()


def method_of(objective: str, selector: str) -> Method:
    """The method a config selects: RLConfig (pg) or NTPConfig (ntp) and its `method` field."""
    for m in (_METHODS.get(n) for n in _METHODS.names()):
        if m.objective == objective and m.selector == selector:
            return m
    known = sorted(m.selector for m in (_METHODS.get(n) for n in _METHODS.names()) if m.objective == objective)
    from t2core.errors import ConfigError

    raise ConfigError(f"method={selector!r} is not one trained by {objective.upper()}; use one of {', '.join(known)}.")


def selectors(objective: str) -> tuple[str, ...]:
    return tuple(sorted(m.selector for m in (_METHODS.get(n) for n in _METHODS.names()) if m.objective == objective))


def adapter_products() -> tuple[str, ...]:
    """The variant names of PEFT adapters (`<product>:<adapter id>`)."""
    return tuple(sorted({m.product for m in (_METHODS.get(n) for n in _METHODS.names()) if m.product != "svf"}))


def method_of_product(product: str) -> Method | None:
    """The method an adapter variant (lora, lora-pg, ia3, dora) was made by; None for svf (several make it)."""
    if product == "svf":
        return None
    return next((m for m in (_METHODS.get(n) for n in _METHODS.names()) if m.product == product), None)


def sampler_for(product: str, sampler: str) -> str:
    """The sampler that applies a product: `sampler` for the base model and SVF experts, hf for adapters."""
    m = method_of_product(product)
    return sampler if m is None or m.takes_vectors else "hf"
