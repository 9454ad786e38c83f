"""Sampler interface: prompts in, completions out.

Evaluation and RL rollouts talk to a sampler, never to `generate` directly, so a backend
that lives elsewhere can plug in without touching callers. Two kinds of backend:

- local (`hf`, `dummy`): generates with the caller's model object; an SVF expert is applied
  by the caller (W' materialised into the weights) before `generate` is called;
- remote (`receives_svf = True`, e.g. a vLLM server, which cannot share an environment with
  Prefect): holds its own copy of the base model and its SVD, and receives only the expert's
  vectors as `SVFWeights` with each call (paper §3.1: W' = U diag(s ⊙ z) Vᵀ needs only z).

Adding a backend is one file plus `register_sampler(...)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from t2core.errors import ConfigError
from t2core.registry import Registry


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy (the paper's evaluation)
    top_p: float = 1.0
    batch_size: int = 8
    dtype: str = "float32"  # "bfloat16" runs CPU matmuls under autocast (~1.6-2x faster with avx512_bf16)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={self.max_new_tokens} must be >= 1.")
        if self.temperature < 0:
            raise ConfigError(f"temperature={self.temperature} must be >= 0 (0 means greedy).")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p={self.top_p} must be in (0, 1].")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1.")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dtype={self.dtype!r} must be 'float32' or 'bfloat16'.")


@dataclass
class Completion:
    text: str
    n_prompt_tokens: int
    n_new_tokens: int
    prompt_ids: list[int] | None = None  # token ids, when the backend exposes them (RL needs them)
    completion_ids: list[int] | None = None  # generated ids, EOS included, padding excluded


@dataclass(frozen=True)
class SVFWeights:
    """An SVF expert as a remote backend receives it: vectors only, no matrices.

    `scale[name]` (r,) is the effective multiplier of each singular value, s' = s ⊙ scale
    (z for the paper's direct parameterisation; z times the nuclear-norm factor for the
    official code's sigmoid one), so the server needs only its own SVD of the same base
    weights, which `base_weights_hash` lets it check.
    """

    base_weights_hash: str
    scale: dict[str, torch.Tensor]  # module name -> (r,) fp32

    def __post_init__(self) -> None:
        for name, v in self.scale.items():
            if v.ndim != 1 or not torch.isfinite(v).all():
                raise ConfigError(f"SVF scale for {name!r} must be a finite 1-D vector; got shape {tuple(v.shape)}.")


class Sampler(ABC):
    name: str
    receives_svf: bool = False  # True: pass the expert as `svf=SVFWeights(...)`, do not materialise locally

    @abstractmethod
    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        cfg: GenerationConfig,
        progress: Callable[[int], None] | None = None,
        svf: SVFWeights | None = None,
    ) -> list[Completion]:
        """One completion per conversation, in input order; `progress(n)` after each n done.

        `svf` is given only to samplers with `receives_svf`; local samplers refuse it (the
        caller applies the expert to the shared model instead), see `check_svf`.
        """

    def check_svf(self, svf: SVFWeights | None) -> None:
        if svf is not None and not self.receives_svf:
            raise ConfigError(f"sampler {self.name!r} generates with the caller's model and does not take SVF "
                              "vectors; apply the expert to the model (materialised) before calling it.")


_SAMPLERS: Registry[Callable[..., Sampler]] = Registry("sampler")


def register_sampler(name: str, factory: Callable[..., Sampler]) -> None:
    _SAMPLERS.register(name, factory)


def make_sampler(name: str, **kwargs) -> Sampler:
    return _SAMPLERS.get(name)(**kwargs)
