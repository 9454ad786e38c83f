"""Sampler interface: prompts in, completions out.

Evaluation and (later) RL rollouts talk to a sampler, never to `generate` directly, so
a backend that lives elsewhere (a vLLM server in its own environment that receives only
z vectors) can plug in without touching callers. Adding a backend is one file plus
`register_sampler(...)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

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


class Sampler(ABC):
    name: str

    @abstractmethod
    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        cfg: GenerationConfig,
        progress: Callable[[int], None] | None = None,
    ) -> list[Completion]:
        """One completion per conversation, in input order; `progress(n)` after each n done."""


_SAMPLERS: Registry[Callable[..., Sampler]] = Registry("sampler")


def register_sampler(name: str, factory: Callable[..., Sampler]) -> None:
    _SAMPLERS.register(name, factory)


def make_sampler(name: str, **kwargs) -> Sampler:
    return _SAMPLERS.get(name)(**kwargs)
