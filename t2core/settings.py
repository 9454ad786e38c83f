"""Shared checks and derivations for the typed settings objects (one place each).

Every operation's settings are one frozen dataclass (`GenerationConfig`, `EvalConfig`,
`RLConfig`, `NTPConfig`, `Profile`) validated in its `__post_init__`; the checks they share
live here so a rule (which dtypes exist, how a per-step seed is derived) is written once.
"""

from __future__ import annotations

import random

from t2core.errors import ConfigError

#: Compute dtypes: fp32 weights, optionally run under bf16 autocast (~1.6-2x faster on avx512_bf16 CPUs,
#: ~6x slower on AVX2-only ones). "auto" (t2core/precision.py) is this machine's faster one.
DTYPES = ("float32", "bfloat16")
REQUESTED_DTYPES = ("auto", *DTYPES)


def check_dtype(value: str, where: str = "dtype") -> str:
    """`value` if it is a concrete compute dtype, else one clear ConfigError naming `where`."""
    if value not in DTYPES:
        raise ConfigError(f"{where}={value!r} must be one of {', '.join(DTYPES)}"
                          + (" (resolve 'auto' first: t2core.precision.resolve_dtype)." if value == "auto" else "."))
    return value


def check_requested_dtype(value: str, where: str = "dtype") -> str:
    """`value` if it is "auto" or a compute dtype (what a profile or a CLI option may say)."""
    if value not in REQUESTED_DTYPES:
        raise ConfigError(f"{where}={value!r} must be one of {', '.join(REQUESTED_DTYPES)}.")
    return value


def resolved_dtype(obj, where: str = "dtype") -> str:
    """For a frozen settings dataclass's `__post_init__`: its `dtype` checked and, if "auto", replaced by
    this machine's choice, so the object (and every id hashed from it) holds the concrete dtype."""
    from t2core.precision import resolve_dtype

    value = resolve_dtype(check_requested_dtype(obj.dtype, where))
    object.__setattr__(obj, "dtype", value)
    return value


def step_seed(seed: int, step: int) -> int:
    """The integer seed of training step `step` of a run seeded `seed` (rollout sampling, choice
    draws): distinct per step, identical on a resumed run."""
    return seed * 100_003 + step


def step_rng(seed: int, step: int) -> random.Random:
    """The Python RNG that draws step `step`'s prompts (independent of the torch stream above)."""
    return random.Random(f"{seed}:{step}")
