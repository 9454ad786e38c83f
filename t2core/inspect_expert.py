"""What an SVF expert does to the model (paper §3.2, Figure 4's question "why does it beat LoRA?").

An expert is one vector z per matrix, W' = U diag(s ⊙ z) Vᵀ: entry i scales the i-th singular
component (ordered by singular value, largest first). So the useful summary of an expert is where
along the spectrum and in which layers it boosts (z > 1) or damps (z < 1) components, and by how
much; and, between two experts, whether they change the same components the same way (cosine of
z − 1, per layer). Everything here reads vectors only: no model, no SVD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2core.errors import ConfigError
from t2core.transfer.mapping import resample, slot


@dataclass(frozen=True)
class MatrixStats:
    name: str
    layer: int
    role: str
    rank: int
    mean: float  # mean z
    min: float
    max: float
    mean_abs_dev: float  # mean |z − 1|
    boosted: float  # fraction of components with z > 1
    damped: float  # fraction with z < 1
    dev_norm: float  # ‖z − 1‖
    head_dev: float  # mean |z − 1| over the top 10% of components (largest singular values)
    tail_dev: float  # mean |z − 1| over the bottom 10%


def matrix_stats(vectors: dict[str, torch.Tensor], eps: float = 1e-6) -> list[MatrixStats]:
    """Per matrix, in block then role order. `vectors`: {matrix: z (r,)} (the effective multipliers)."""
    out = []
    for name, z in sorted(vectors.items(), key=lambda kv: slot(kv[0])):
        z = z.double()
        d = z - 1
        k = max(1, z.shape[0] // 10)
        layer, role = slot(name)
        out.append(MatrixStats(name, layer, role, int(z.shape[0]), float(z.mean()), float(z.min()), float(z.max()),
                               float(d.abs().mean()), float((d > eps).double().mean()),
                               float((d < -eps).double().mean()), float(torch.linalg.vector_norm(d)),
                               float(d[:k].abs().mean()), float(d[-k:].abs().mean())))
    return out


def profile_by_rank(vectors: dict[str, torch.Tensor], bins: int = 50) -> dict[str, torch.Tensor]:
    """{role: mean over blocks of z − 1 (bins,)} along normalised rank (cell averages, as transfer maps)."""
    by_role: dict[str, list[torch.Tensor]] = {}
    for name, z in vectors.items():
        by_role.setdefault(slot(name)[1], []).append(resample(z.double() - 1, bins))
    return {role: torch.stack(v).mean(0) for role, v in sorted(by_role.items())}


def layer_cosines(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[tuple[int, float | None]]:
    """Per block: the cosine of the two experts' changes z − 1 (the block's matrices concatenated);
    None where either leaves the block unchanged. The experts must target the same matrices."""
    if set(a) != set(b) or any(a[n].shape != b[n].shape for n in a):
        raise ConfigError("the two experts adapt different matrices (another model or other targets); compare "
                          "experts of one model and target spec (move one with `t2 transfer` first).")
    blocks = sorted({slot(n)[0] for n in a})
    out = []
    for blk in blocks:
        names = sorted(n for n in a if slot(n)[0] == blk)
        da = torch.cat([a[n].double() - 1 for n in names])
        db = torch.cat([b[n].double() - 1 for n in names])
        na, nb = torch.linalg.vector_norm(da), torch.linalg.vector_norm(db)
        out.append((blk, float(da @ db / (na * nb)) if na > 0 and nb > 0 else None))
    return out
