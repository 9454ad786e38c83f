"""Mixtures of SVF experts z' = Σ_k α_k z_k (paper §3.3), with α per expert or per expert and layer.

The mixture is taken over the experts' *effective* multipliers (`SVFWeights.scale`: z itself for
t2's direct parameterisation), so experts of either parameterisation mix, and the result is
stored as an ordinary direct-parameterised expert whose z is the mixture: evaluated, dispatched
and transferred like any other, its header recording where it came from.
"""

from __future__ import annotations

import torch

from t2core.errors import ConfigError
from t2core.sampling.base import SVFWeights
from t2core.svf.bank import ExpertBank
from t2core.svf.policy import SVFConfig, SVFPolicy


def mix_scales(bank: ExpertBank, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    """{matrix: Σ_k α_k scale_k} (r,) for α (K,) or (K, L) (L = `bank.layers`)."""
    if alpha.shape not in ((bank.k,), (bank.k, len(bank.layers))):
        raise ConfigError(f"mixing coefficients of shape {tuple(alpha.shape)} for {bank.k} experts in "
                          f"{len(bank.layers)} layers; expected ({bank.k},) or ({bank.k}, {len(bank.layers)}).")
    w = alpha.float()[None]  # (1, K[, L]): a few floats, moved to where the bank lies (its device)
    return {n: (bank.weights_for(n, w.to(sc.device)) @ sc)[0] for n, sc in bank.scales.items()}  # (r,)


def mix_weights(bank: ExpertBank, alpha: torch.Tensor) -> SVFWeights:
    return SVFWeights(bank.base_weights_hash, mix_scales(bank, alpha))


def mixture_policy(bank: ExpertBank, alpha: torch.Tensor, targets: str) -> SVFPolicy:
    """A direct-parameterised expert whose z is the mixture (what few-shot adaptation stores), on the host:
    `placement.place_policy` puts it on the model's devices to apply it."""
    scales = mix_scales(bank, alpha)
    policy = SVFPolicy({n: int(v.shape[0]) for n, v in scales.items()}, SVFConfig(targets=targets, param="direct"))
    policy.load_raw_state(scales)
    return policy
