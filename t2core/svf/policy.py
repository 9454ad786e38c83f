"""Singular Value Fine-tuning policy (paper §3.2, Eq. 1): one learnable vector per matrix.

For each targeted W = U diag(s) Vᵀ the expert is a vector z with W' = U diag(s ⊙ z) Vᵀ.
Two parameterisations (the paper's text, §3.2, gives Σ' = Σ ⊗ diag(z) and neither a parameterisation
nor an initialisation, so neither is "the paper's"):
- `direct` (t2's): z is the parameter, initialised at 1, so W' = W exactly at start: the equation read
  literally.
- `sigmoid` (the released code, `policy/base.py` and `utils.compose_new_params`): z = sigmoid(p),
  p ~ 0.1 + 0.01·N(0, 1), and the scaled singular values are rescaled by Σs / Σ(s ⊙ z) so the nuclear
  norm of W' equals W's. What the paper's numbers were produced with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from t2core.errors import ConfigError
from t2core.models.targets import check_target_spec

PARAMS = ("direct", "sigmoid")
MODES = ("factored", "materialise")


@dataclass(frozen=True)
class SVFConfig:
    targets: str = field(default="mlp", metadata={"help": "mlp (paper default), attn or both (Table 4)"})
    param: str = field(default="direct", metadata={"help": "direct: z init 1 (t2); sigmoid with the Σs rescale: "
                                                                  "released code"})
    mode: str = field(default="factored", metadata={"help": "factored: U(s⊙z⊙Vᵀx); materialise: build W'"})
    init_mean: float = field(default=0.1, metadata={"help": "sigmoid param: mean of p at init"})
    init_std: float = field(default=0.01, metadata={"help": "sigmoid param: std of p at init"})

    def __post_init__(self) -> None:
        check_target_spec(self.targets)
        if self.param not in PARAMS:
            raise ConfigError(f"SVF param {self.param!r} is not one of {PARAMS}; use 'direct' (t2) or 'sigmoid' (released code).")
        if self.mode not in MODES:
            raise ConfigError(f"SVF mode {self.mode!r} is not one of {MODES}.")
        if self.init_std < 0:
            raise ConfigError(f"init_std={self.init_std} must be >= 0.")


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot contain dots


class SVFPolicy(nn.Module):
    """The trainable vectors of one SVF expert, keyed by module name.

    `ranks` maps each targeted module name to r = min(out, in) (the length of s and z).
    """

    def __init__(self, ranks: dict[str, int], cfg: SVFConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg or SVFConfig()
        self.names = list(ranks)
        gen = torch.Generator().manual_seed(seed)
        params = {}
        for name, r in ranks.items():
            if self.cfg.param == "direct":
                init = torch.ones(r)
            else:
                init = self.cfg.init_mean + self.cfg.init_std * torch.randn(r, generator=gen)
            params[_key(name)] = nn.Parameter(init)
        self.params = nn.ParameterDict(params)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def z(self, name: str) -> torch.Tensor:
        """The multiplicative vector z (r,) for module `name`."""
        p = self.params[_key(name)]
        return p if self.cfg.param == "direct" else torch.sigmoid(p)

    def scale(self, name: str, s: torch.Tensor) -> torch.Tensor:
        """The effective multiplier m (r,) with s' = s ⊙ m: z, times Σs / Σ(s ⊙ z) for sigmoid."""
        z = self.z(name).to(s.dtype)
        if self.cfg.param == "sigmoid":
            z = z * (s.sum() / (s * z).sum())  # keep the nuclear norm (released code)
        return z

    def scaled_s(self, name: str, s: torch.Tensor) -> torch.Tensor:
        """s ⊙ z (r,), with the sigmoid parameterisation's nuclear-norm-preserving rescale."""
        return s * self.scale(name, s)

    def raw_state(self) -> dict[str, torch.Tensor]:
        """{module name: raw parameter} (what an expert file stores)."""
        return {name: self.params[_key(name)].detach().cpu().clone() for name in self.names}

    def load_raw_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name in self.names:
                self.params[_key(name)].copy_(state[name])
