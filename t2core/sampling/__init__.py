"""Samplers. Importing this package registers the built-in backends (hf, dummy, proc, vllm): every
module here is imported (`import_submodules`), so a new sampler is one file with one `register_sampler` call."""

from t2core.registry import import_submodules
from t2core.sampling.base import (
    Completion,
    GenerationConfig,
    RowExperts,
    Sampler,
    SVFWeights,
    check_exact_sampler,
    check_sampler,
    make_sampler,
    register_sampler,
    sampler_names,
)

import_submodules(__name__, __path__)  # each module registers what it defines

__all__ = ["Completion", "GenerationConfig", "RowExperts", "SVFWeights", "Sampler", "check_exact_sampler", "check_sampler", "make_sampler", "register_sampler",
           "sampler_names"]
