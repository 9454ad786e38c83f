"""What the REINFORCE loop trains: a policy adapter over the frozen base model.

The loop (t2core/training/reinforce.py) only needs: the trainable parameters, the weights to
roll out with, a differentiable forward, the base model for the KL term, and a state to
checkpoint. SVF (paper §3.2) and LoRA-PG (the paper's policy-gradient LoRA baseline) are
two implementations; adding another is one class plus `register_policy(...)`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import torch

from t2core.adapters import peft_config, peft_module
from t2core.errors import ConfigError
from t2core.models.registry import LoadedModel
from t2core.registry import Registry
from t2core.sampling import SVFWeights
from t2core.svf.apply import SVD, attached, materialised, svf_weights
from t2core.svf.placement import place_policy
from t2core.svf.policy import SVFPolicy
from t2core.training.ntp import lora_pg_settings


class PolicyAdapter(ABC):
    name: str

    @abstractmethod
    def parameters(self) -> list[torch.nn.Parameter]: ...

    @abstractmethod
    def rollout(self) -> contextlib.AbstractContextManager:
        """Weights used for generation (rollouts and validation), no autograd."""

    @abstractmethod
    def train_forward(self) -> contextlib.AbstractContextManager:
        """Within it, a forward pass of the model is differentiable w.r.t. `parameters()`."""

    def reference(self) -> contextlib.AbstractContextManager:
        """Within it, the model is the frozen base π_W (for the KL term)."""
        return contextlib.nullcontext()

    @abstractmethod
    def state(self) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def load_state(self, state: dict[str, torch.Tensor]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Leave the base model as it was."""

    def svf_weights(self) -> SVFWeights:
        """The current policy as vectors only, for a sampler with `receives_svf` (a remote server)."""
        raise ConfigError(f"policy method {self.name!r} cannot be sent to a sampler that receives only SVF vectors; "
                          "use a local sampler (hf) for it.")


class SVFAdapter(PolicyAdapter):
    name = "svf"

    def __init__(self, loaded: LoadedModel, svd: SVD, cfg) -> None:
        self.model, self.svd, self.dtype, self.weights_hash = loaded.model, svd, cfg.dtype, loaded.weights_hash
        self.origin = loaded.directory  # W' written over W on the host, W read back from here (svf/apply.py)
        # z on the device of the weights it changes, before the trainer builds its optimizer over it
        self.policy = place_policy(SVFPolicy({n: int(svd[n][1].shape[0]) for n in svd}, cfg.svf, seed=cfg.seed),
                                   loaded.model)

    def parameters(self):
        return list(self.policy.parameters())

    def rollout(self):
        return materialised(self.model, self.svd, self.policy, self.dtype, self.origin)  # W' written once: no per-token cost

    def svf_weights(self) -> SVFWeights:
        return svf_weights(self.policy, self.svd, self.weights_hash)

    def train_forward(self):
        return attached(self.model, self.svd, self.policy)

    def state(self):
        return self.policy.raw_state()

    def load_state(self, state):
        self.policy.load_raw_state(state)


class LoRAAdapter(PolicyAdapter):
    """LoRA-PG: PEFT LoRA (paper: r 16, alpha 32, dropout 0.05 on q, v) trained by the same loop."""

    name = "lora"

    def __init__(self, loaded: LoadedModel, svd: SVD | None, cfg) -> None:
        peft = peft_module()
        self._peft = peft
        self.pm = peft.get_peft_model(loaded.model, peft_config(lora_pg_settings(cfg.task, cfg.seed), loaded.family))
        self.pm.eval()

    def parameters(self):
        return [p for p in self.pm.parameters() if p.requires_grad]

    def rollout(self):
        return torch.no_grad()  # the adapter is injected in place: generation already uses it

    def train_forward(self):
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        with self.pm.disable_adapter():
            yield

    def state(self):
        return {k: v.detach().cpu().clone() for k, v in self._peft.get_peft_model_state_dict(self.pm).items()}

    def load_state(self, state):
        self._peft.set_peft_model_state_dict(self.pm, state)

    def close(self) -> None:
        self.pm.unload()


_POLICIES: Registry[Callable[..., PolicyAdapter]] = Registry("policy method")


def register_policy(name: str, factory: Callable[..., PolicyAdapter]) -> None:
    _POLICIES.register(name, factory)


def make_policy(name: str, loaded: LoadedModel, svd: SVD | None, cfg) -> PolicyAdapter:
    return _POLICIES.get(name)(loaded, svd, cfg)


register_policy("svf", SVFAdapter)
register_policy("lora", LoRAAdapter)
