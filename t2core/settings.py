"""Shared checks and derivations for the typed settings objects (one place each).

Every operation's settings are one frozen dataclass (`GenerationConfig`, `EvalConfig`,
`RLConfig`, `NTPConfig`, `Profile`) validated in its `__post_init__`; the checks they share
live here so a rule (which dtypes exist, how a per-step seed is derived) is written once.
"""

from __future__ import annotations

import random

from t2core.errors import ConfigError

#: Compute dtypes: fp32 weights, optionally run under bf16 autocast (~1.6-2x faster on avx512_bf16 CPUs).
DTYPES = ("float32", "bfloat16")


def check_dtype(value: str, where: str = "dtype") -> str:
    """`value` if it is a known compute dtype, else one clear ConfigError naming `where`."""
    if value not in DTYPES:
        raise ConfigError(f"{where}={value!r} must be one of {', '.join(DTYPES)}.")
    return value


def step_seed(seed: int, step: int) -> int:
    """The integer seed of training step `step` of a run seeded `seed` (rollout sampling, choice
    draws): distinct per step, identical on a resumed run."""
    return seed * 100_003 + step


def step_rng(seed: int, step: int) -> random.Random:
    """The Python RNG that draws step `step`'s prompts (independent of the torch stream above)."""
    return random.Random(f"{seed}:{step}")
