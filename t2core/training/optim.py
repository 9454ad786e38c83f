"""The optimiser and learning-rate schedule of the REINFORCE loop (paper Appendix A.1), one of two recipes.

The paper's text and its released code disagree, so both are offered and a profile names the one it uses:

- `adamw-cosine` (the paper, A.1: "AdamW using a learning rate of 2×10⁻³ with cosine decay"): AdamW with
  torch's default weight decay (0.01; the paper gives none), the lr of optimiser step k (1-based) of n
  `lr · ½(1 + cos(π (k−1)/n))`: the full lr at the first step, decaying towards 0 at the last.
- `adam-constant` (the released code, `optim_modules.Reinforce`: `torch.optim.Adam(..., lr=lr)`, no
  scheduler): Adam at a constant lr. t2's behaviour before the option existed.

The lr of a step is a function of the step alone (no scheduler state), so a run resumed from its checkpoint
sets exactly the lr the uninterrupted run would have set.
"""

from __future__ import annotations

import math

import torch

from t2core.errors import ConfigError

OPTIMIZERS = ("adam-constant", "adamw-cosine")


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer {name!r} must be one of {', '.join(OPTIMIZERS)} (adamw-cosine: the paper's "
                          "A.1 text; adam-constant: the released code).")
    return name


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The optimiser `name` over `params` at `lr` (its schedule is `step_lr`)."""
    check_optimizer(name)
    return torch.optim.AdamW(params, lr=lr) if name == "adamw-cosine" else torch.optim.Adam(params, lr=lr)


def step_lr(name: str, lr: float, step: int, steps: int) -> float:
    """The learning rate of optimiser step `step` (1-based) of `steps` under schedule `name`."""
    check_optimizer(name)
    if name == "adam-constant":
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
