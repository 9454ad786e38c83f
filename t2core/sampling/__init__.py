"""Samplers. Importing this package registers the built-in backends (hf, dummy, proc, vllm)."""

from t2core.sampling import dummy, hf, proc, vllm  # noqa: F401 - registration side effects
from t2core.sampling.base import (
    Completion,
    GenerationConfig,
    RowExperts,
    Sampler,
    SVFWeights,
    check_sampler,
    make_sampler,
    register_sampler,
)

__all__ = ["Completion", "GenerationConfig", "RowExperts", "SVFWeights", "Sampler", "check_sampler", "make_sampler", "register_sampler"]
