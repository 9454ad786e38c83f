"""An SVF expert's change as a low-rank update, and its best truncation (paper §3.1-3.2).

An expert replaces W = U diag(s) Vᵀ by W' = U diag(s ⊙ m) Vᵀ, m the expert's multiplier (its z; for the
sigmoid parameterisation σ(p) rescaled to keep the nuclear norm, `SVFPolicy.scale`). So its change is

    ΔW = W' − W = U diag(d) Vᵀ,  d = s ⊙ (m − 1),

already a singular value decomposition up to the order and signs of d: U and V are orthonormal, so
‖ΔW‖_F² = Σ dᵢ², and the best rank-r approximation of ΔW in Frobenius norm (Eckart–Young) keeps the r
entries of d with the largest |dᵢ|: ΔW_r = U_r diag(d_r) V_rᵀ, with error ‖ΔW − ΔW_r‖_F² = Σ of the other
dᵢ². No new SVD is needed, and each error is known before any matrix is built.

A LoRA adapter holds ΔW_r as B·A (B out×r, A r×in, PEFT's `lora_B`, `lora_A`); `factors` splits d evenly
between them (B = U_r diag(sign(d_r)·√|d_r|), A = diag(√|d_r|) V_rᵀ) so that neither factor carries the whole
dynamic range when a server holds them in 16 bits. All sums here are in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2core.errors import ArtifactError, ConfigError

SVD = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # name -> U (out,r), s (r,), V (in,r)


def spectra(scales: dict[str, torch.Tensor], svd: SVD) -> dict[str, torch.Tensor]:
    """{matrix: d = s ⊙ (m − 1)} (float64) for the multipliers `scales` (`SVFPolicy.scale` or a
    mixture's Σₖ αₖ mₖ), checked against the decomposition they apply to."""
    out = {}
    for name, m in scales.items():
        if name not in svd:
            raise ArtifactError(f"the expert changes {name!r}, which the decomposition does not hold: a "
                                "decomposition of another model or target spec.")
        s = svd[name][1]
        if m.shape != s.shape:
            raise ArtifactError(f"the expert's vector for {name!r} has length {m.shape[0]}, the matrix has "
                                f"{s.shape[0]} singular values: an expert of another model.")
        out[name] = s.detach().double().cpu() * (m.detach().double().cpu() - 1)
    return out


def kept(d: torch.Tensor, r: int) -> torch.Tensor:
    """Indices of the r entries of d with the largest |dᵢ| (ties: the lower index first), largest first."""
    return torch.argsort(d.abs(), descending=True, stable=True)[:r]


def _tails(d: torch.Tensor) -> torch.Tensor:
    """(len(d) + 1,): entry r is Σ of the dᵢ² left out at rank r (0 at full rank, exactly)."""
    sq = (d.abs().sort(descending=True).values ** 2).flip(0)
    return torch.cat([sq.cumsum(0).flip(0), torch.zeros(1, dtype=sq.dtype)])


def max_rank(ds: dict[str, torch.Tensor]) -> int:
    """The largest rank a uniform-rank LoRA of these matrices needs: the largest min(out, in)."""
    return max((int(d.shape[0]) for d in ds.values()), default=0)


@dataclass(frozen=True)
class Truncation:
    """What rank r keeps of an expert's change: per matrix and over all of them, ‖ΔW − ΔW_r‖_F / ‖ΔW‖_F
    (0 where ΔW = 0), and each ‖ΔW‖_F."""

    rank: int
    errors: dict[str, float]
    error: float  # sqrt(Σ_matrices ‖ΔW − ΔW_r‖²) / sqrt(Σ_matrices ‖ΔW‖²): the change as one vector
    norms: dict[str, float]


def truncation(ds: dict[str, torch.Tensor], r: int) -> Truncation:
    """The relative errors of keeping rank r of every matrix (a matrix of rank ≤ r is kept whole)."""
    if r < 1:
        raise ConfigError(f"rank {r}: a LoRA rank is at least 1.")
    errors, norms, lost, total = {}, {}, 0.0, 0.0
    for name, d in ds.items():
        tails = _tails(d)
        left, whole = float(tails[min(r, d.shape[0])]), float(tails[0])
        errors[name] = (left / whole) ** 0.5 if whole > 0 else 0.0
        norms[name] = whole ** 0.5
        lost, total = lost + left, total + whole
    return Truncation(r, errors, (lost / total) ** 0.5 if total > 0 else 0.0, norms)


def check_tol(tol: float) -> float:
    """A relative error in [0, 1) (1 would be the empty adapter)."""
    if not 0 <= tol < 1:
        raise ConfigError(f"--tol {tol}: give a relative error of ΔW in [0, 1), e.g. 0.05.")
    return tol


def smallest_rank(ds: dict[str, torch.Tensor], tol: float) -> int:
    """The smallest r ≥ 1 whose error over all matrices (`Truncation.error`) is ≤ tol.

    One rank for every matrix (a LoRA that servers load with one max rank), judged on the whole change:
    a per-matrix bound would let one matrix whose change is tiny but spread over its whole spectrum force
    full rank on all of them, for a part of ΔW that hardly matters. The per-matrix errors are recorded."""
    check_tol(tol)
    n = max_rank(ds)
    if n == 0:
        raise ArtifactError("the expert changes no matrix; there is nothing to export.")
    lost = torch.zeros(n + 1, dtype=torch.float64)
    total = 0.0
    for d in ds.values():
        tails = _tails(d)
        lost += torch.cat([tails, tails[-1:].expand(n + 1 - tails.shape[0])])  # rank ≥ its own: nothing lost
        total += float(tails[0])
    if total == 0:
        return 1  # ΔW = 0 (z = 1 everywhere): the base model; rank 1 with zero factors
    ok = torch.nonzero(lost[1:] <= (tol ** 2) * total).flatten()
    return int(ok[0]) + 1  # lost[n] = 0, so some rank passes


def factors(u: torch.Tensor, d: torch.Tensor, v: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (r, in), B (out, r)) float32 with B @ A = U_r diag(d_r) V_rᵀ, the best rank-r ΔW; a matrix of rank
    below r gets zero rows of A and columns of B past its rank (they add nothing)."""
    idx = kept(d, r)
    root = d[idx].abs().sqrt()
    a = torch.zeros(r, v.shape[0], dtype=torch.float64)
    b = torch.zeros(u.shape[0], r, dtype=torch.float64)
    k = idx.shape[0]
    a[:k] = root[:, None] * v[:, idx].double().T
    b[:, :k] = u[:, idx].double() * (torch.sign(d[idx]) * root)[None, :]
    return a.float().contiguous(), b.float().contiguous()
