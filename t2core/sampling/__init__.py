"""Samplers. Importing this package registers the built-in backends (hf, dummy, proc)."""

from t2core.sampling import dummy, hf, proc  # noqa: F401 - registration side effects
from t2core.sampling.base import (
    Completion,
    GenerationConfig,
    Sampler,
    SVFWeights,
    make_sampler,
    register_sampler,
)

__all__ = ["Completion", "GenerationConfig", "SVFWeights", "Sampler", "make_sampler", "register_sampler"]
