"""Controls for a transferred expert (paper §4.4): is it the skill that transfers, or any change?

- `ordered`: the vectors as mapped (the transfer itself).
- `shuffled`: each vector randomly permuted (the paper's control). Same values, so the same
  distribution of gains, but the link between a gain and its singular component is cut: if
  ordered beats shuffled, the ordering of singular components carries the skill.
- `random`: beyond the paper, a random direction with the same distance from "no change" as the
  transferred vector, per matrix: z_rand = c + ‖z − c‖ · g / ‖g‖, g ~ N(0, I). If ordered beats
  base but not random, any perturbation of that size helps, not the transferred skill. c is the
  value that leaves W unchanged: 1 for the direct parameterisation; for the sigmoid one (whose
  rescale keeps the nuclear norm) any constant vector, so c = the vector's own mean.

Each is seeded per matrix (seed and matrix name), so a control is reproducible matrix by matrix
whatever the order in which matrices are visited. Adding a control is one function and one entry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from t2core.hashing import sha256_bytes
from t2core.registry import Registry


def _gen(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(sha256_bytes(f"{seed}:{name}".encode())[:15], 16))


def ordered(v: torch.Tensor, name: str, seed: int, neutral: float | None) -> torch.Tensor:
    return v.clone()


def shuffled(v: torch.Tensor, name: str, seed: int, neutral: float | None) -> torch.Tensor:
    return v[torch.randperm(v.shape[0], generator=_gen(seed, name))]


def random_matched(v: torch.Tensor, name: str, seed: int, neutral: float | None) -> torch.Tensor:
    c = float(v.mean()) if neutral is None else neutral
    g = torch.randn(v.shape[0], generator=_gen(seed, name), dtype=torch.float64)
    size = float(torch.linalg.vector_norm(v.double() - c))
    return (c + size * g / torch.linalg.vector_norm(g)).to(v.dtype)


Control = Callable[[torch.Tensor, str, int, "float | None"], torch.Tensor]
CONTROLS: Registry[Control] = Registry("transfer control", hint="ordered (the transfer), shuffled (the paper's "
                                                                  "control) or random (magnitude-matched)")
CONTROLS.register("ordered", ordered)
CONTROLS.register("shuffled", shuffled)
CONTROLS.register("random", random_matched)


def neutral_value(param: str) -> float | None:
    """The z that leaves W unchanged: 1 (direct); None for sigmoid (any constant: the vector's mean)."""
    return 1.0 if param == "direct" else None
