"""Per-row SVF experts in one batch: a bank of K experts and a weight vector over it per row.

Two-pass adaptation (paper §3.3) answers each prompt with its own expert, or with a mixture
z' = Σ_k α_k z_k of experts. Writing W' into the weights (`materialised`) serves one expert
per forward pass. The factored path y = U ((s ⊙ m_b) ⊙ (Vᵀ x_b)) instead takes a different
multiplier vector m_b for each row b, at the cost of the factored matmuls. So one batch can
mix experts, and mixtures, freely.

The bank stacks the experts' *effective* multipliers (`SVFWeights.scale`: z for t2's
direct parameterisation), and a row's multiplier is m_b = Σ_k w_bk · scale_k. With one-hot
weights a row gets exactly one expert; with α it gets the paper's linear mixture of z.

    bank = ExpertBank.of([svf_weights(p, svd, h) for p in experts])   # K experts
    with per_row(model, svd, bank, one_hot([0, 2, 1, 0], bank.k)):    # (B, K) weights
        model.generate(**batch)                                       # row b: its own expert
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from t2core.errors import ArtifactError, ConfigError
from t2core.sampling.base import SVFWeights
from t2core.settings import check_dtype
from t2core.svf.placement import check_bank, check_factors

SVD = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # name -> U (out,r), S (r,), V (in,r)


@dataclass(frozen=True)
class ExpertBank:
    """K experts of one base model as stacked multiplier vectors: `scales[name]` is (K, r)."""

    base_weights_hash: str
    scales: dict[str, torch.Tensor]

    @property
    def k(self) -> int:
        return next(iter(self.scales.values())).shape[0]

    @property
    def layers(self) -> tuple[int, ...]:
        """The transformer blocks the bank's matrices lie in, in order (for per-layer weights)."""
        return tuple(sorted({layer_number(n) for n in self.scales}))

    def layer_of(self, name: str) -> int:
        """Position of matrix `name`'s block in `layers` (the L axis of per-layer weights (B, K, L))."""
        return self.layers.index(layer_number(name))

    def weights_for(self, name: str, weights: torch.Tensor) -> torch.Tensor:
        """(B, K) weights of matrix `name` from per-row weights (B, K) or per-row-and-layer (B, K, L)."""
        return weights if weights.ndim == 2 else weights[:, :, self.layer_of(name)]

    def mixture(self, row: torch.Tensor) -> SVFWeights:
        """One row's expert as vectors, m = Σ_k row[k] · scale_k (row (K,) or per layer (K, L)): what a
        sampler that serves one set of weights at a time (vLLM) loads for that row's group (on the host:
        vectors in transit to another process)."""
        return SVFWeights(self.base_weights_hash,
                          {n: (self.weights_for(n, row.float()[None].to(sc.device)) @ sc)[0].cpu()
                           for n, sc in self.scales.items()})

    @classmethod
    def of(cls, experts: list[SVFWeights]) -> ExpertBank:
        if not experts:
            raise ConfigError("an expert bank needs at least one expert.")
        first = experts[0]
        for i, e in enumerate(experts[1:], 1):
            if e.base_weights_hash != first.base_weights_hash:
                raise ArtifactError(f"expert {i} of the bank belongs to base weights {e.base_weights_hash[:12]}, "
                                    f"expert 0 to {first.base_weights_hash[:12]}: a bank holds one model's experts.")
            if set(e.scale) != set(first.scale):
                raise ArtifactError(f"expert {i} of the bank targets other matrices than expert 0; decompose and "
                                    "train them with the same target spec.")
        return cls(first.base_weights_hash,
                   {n: torch.stack([e.scale[n].float() for e in experts]) for n in first.scale})  # (K, r)


def layer_number(name: str) -> int:
    """The block index in a module name such as `model.layers.12.mlp.up_proj` (0 when there is none)."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else 0


_LAYER = re.compile(r"\.(\d+)\.")


def one_hot(rows: list[int], k: int) -> torch.Tensor:
    """(B, K) weights giving row b the expert `rows[b]`."""
    if any(not 0 <= r < k for r in rows):
        raise ConfigError(f"expert indices {rows} must lie in [0, {k}).")
    return torch.nn.functional.one_hot(torch.tensor(rows), k).float()


class _RowMixLinear(nn.Module):
    """A Linear computed as U ((s ⊙ m_b) ⊙ (Vᵀ x_b)) with a multiplier vector per batch row."""

    def __init__(self, base: nn.Linear, u: torch.Tensor, ss: torch.Tensor, v: torch.Tensor,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.base = base
        dev, dt = base.weight.device, dtype or base.weight.dtype
        self.register_buffer("u", u.to(dev, dt), persistent=False)  # (out, r)
        self.register_buffer("ss", ss.to(dev, torch.float32), persistent=False)  # (B, r): s ⊙ m_b
        self.register_buffer("v", v.to(dev, dt), persistent=False)  # (in, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, T, in)
        if x.shape[0] != self.ss.shape[0]:
            raise ConfigError(f"a batch of {x.shape[0]} rows met per-row weights for {self.ss.shape[0]} rows; "
                              "give one weight vector per row of the batch.")
        h = x @ self.v  # (B, T, r)
        y = (h * self.ss[:, None, :].to(h.dtype)) @ self.u.T  # (B, T, out)
        return y + self.base.bias if self.base.bias is not None else y


class _RowGroupLinear(nn.Module):
    """A Linear whose rows use one of G materialised weights: W'_g = U diag(s ⊙ m_g) Vᵀ, one per
    distinct weight vector of the batch, each applied to its own rows (FLOPs of the base model)."""

    def __init__(self, base: nn.Linear, weights: torch.Tensor, group: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        dev = weights.device
        self.register_buffer("w", weights, persistent=False)  # (G, out, in)
        # the rows of each group found where `group` was computed (the host: no device sync), then moved
        self.rows = [torch.nonzero(group == g).flatten().to(dev) for g in range(weights.shape[0])]
        self.register_buffer("group", group.to(dev), persistent=False)  # (B,) group of each row

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, T, in)
        if x.shape[0] != self.group.shape[0]:
            raise ConfigError(f"a batch of {x.shape[0]} rows met per-row weights for {self.group.shape[0]} rows; "
                              "give one weight vector per row of the batch.")
        if len(self.rows) == 1:
            y = x @ self.w[0].to(x.dtype).T
        else:
            parts = [(idx, x[idx] @ self.w[g].to(x.dtype).T) for g, idx in enumerate(self.rows)]
            y = x.new_empty(*x.shape[:-1], self.w.shape[1], dtype=parts[0][1].dtype)  # (B, T, out); autocast's dtype
            for idx, part in parts:
                y[idx] = part
        return y + self.base.bias if self.base.bias is not None else y


@contextlib.contextmanager
def per_row(model: nn.Module, svd: SVD, bank: ExpertBank, weights: torch.Tensor,
            dtype: str = "float32", mode: str = "factored") -> Iterator[nn.Module]:
    """Within the block, row b of every forward uses Σ_k weights[b, k] · expert k (no autograd).

    The batch must keep its rows in this order for the whole block (as `generate` does).
    `mode`: "factored" computes U((s ⊙ m_b) ⊙ Vᵀx) per row (any number of distinct rows; 1.375×
    the MLP FLOPs at full rank); "grouped" materialises one W' per *distinct* weight vector and
    applies each to its own rows inside every layer (the base model's FLOPs, G copies of W').
    `dtype="bfloat16"` keeps U and V (or W') in bf16 for generation under bf16 autocast, which would
    otherwise cast them again at every token (they are buffers, outside autocast's cache).
    The factors (`placement.resident_svd`) and the bank (`placement.place_bank`) must be on the weights'
    devices; `weights` may be on the host (a CEM population): it is moved to the bank's device once."""
    check_dtype(dtype, "per_row(dtype)")
    if mode not in ("factored", "grouped"):
        raise ConfigError(f"per_row(mode={mode!r}): expected 'factored' or 'grouped'.")
    n_layers = len(bank.layers)
    if (weights.ndim not in (2, 3) or weights.shape[1] != bank.k or (weights.ndim == 3 and weights.shape[2] != n_layers)
            or not torch.isfinite(weights).all()):
        raise ConfigError(f"per-row weights must be a finite (batch, {bank.k}) or (batch, {bank.k}, {n_layers}) tensor; "
                          f"got {tuple(weights.shape)}.")
    for name, sc in bank.scales.items():
        if name not in svd:
            raise ArtifactError(f"the bank targets {name!r}, which the decomposition does not contain.")
        if sc.shape[1] != svd[name][1].shape[0]:
            raise ArtifactError(f"the bank's vectors for {name!r} have length {sc.shape[1]}, the matrix has "
                                f"{svd[name][1].shape[0]} singular values: experts of another model.")
    check_factors(model, svd, bank.scales)
    check_bank(bank, model)
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        with torch.no_grad():
            flat = weights.float().reshape(weights.shape[0], -1)  # (B, K) or (B, K·L)
            distinct, group = torch.unique(flat, dim=0, return_inverse=True)  # (G, K[·L]), (B,)
            distinct = distinct.reshape(-1, *weights.shape[1:])  # (G, K) or (G, K, L)
            low = torch.bfloat16 if dtype == "bfloat16" else None
            on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # the weights, once per device
            for name, sc in bank.scales.items():
                u, s, v = svd[name]
                if sc.device not in on:
                    on[sc.device] = (weights.float().to(sc.device), distinct.to(sc.device))
                w_rows, w_distinct = on[sc.device]
                parent_name, _, child = name.rpartition(".")
                parent = model.get_submodule(parent_name) if parent_name else model
                base = getattr(parent, child)
                if mode == "factored":
                    mult = bank.weights_for(name, w_rows) @ sc  # (B, K) @ (K, r) -> (B, r)
                    new: nn.Module = _RowMixLinear(base, u, s.float()[None, :] * mult, v, low)
                else:
                    ss = s.float()[None, :] * (bank.weights_for(name, w_distinct) @ sc)  # (G, r)
                    wd = low or base.weight.dtype
                    w = torch.stack([(u.to(wd) * ss[g].to(wd)) @ v.to(wd).T for g in range(ss.shape[0])])
                    new = _RowGroupLinear(base, w.to(base.weight.device), group)
                setattr(parent, child, new)
                swapped.append((parent, child, base))
        yield model
    finally:
        for parent, child, base in reversed(swapped):
            setattr(parent, child, base)
