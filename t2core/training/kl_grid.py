"""λ chosen on validation from a grid (paper Appendix A.1: "We employ early stopping and select the best λ
(the coefficient of the KL divergence term) based on validation performance").

One expert is trained per λ, each an ordinary REINFORCE run with its own content id (so each is stored,
checkpointed and reused on its own: a grid killed half-way resumes with the finished experts reused and the
interrupted one from its checkpoint). The chosen expert is the one with the best early-stopping validation
accuracy; among equal ones, the first in the grid's order (a profile lists its preferred λ first). The grid,
each λ's validation accuracy and the chosen λ are recorded with the chosen expert's training metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from t2core.errors import ConfigError
from t2core.ids import content_id
from t2core.training.config import RLConfig


def check_kl_grid(grid: Sequence[float]) -> tuple[float, ...]:
    """The grid as a tuple; ConfigError (one line) for a negative or repeated λ."""
    grid = tuple(float(x) for x in grid)
    if any(x < 0 for x in grid) or len(set(grid)) != len(grid):
        raise ConfigError(f"kl_grid={list(grid)} must hold distinct λ >= 0 (the paper sweeps the KL coefficient).")
    return grid


def parse_kl_grid(text: str) -> tuple[float, ...]:
    """`"0,0.1,0.2"` -> (0.0, 0.1, 0.2); ConfigError (one line) for anything else."""
    try:
        return check_kl_grid([float(x) for x in text.split(",") if x.strip()])
    except ValueError as e:
        raise ConfigError(f"kl_grid {text!r} is not a comma-separated list of numbers ({e}).") from None


def grid_configs(cfg: RLConfig, grid: Sequence[float]) -> list[RLConfig]:
    """`cfg` once per λ of the grid (its own kl_coef replaced)."""
    return [replace(cfg, kl_coef=lam) for lam in check_kl_grid(grid)]


def grid_run_id(member_ids: Sequence[str]) -> str:
    """The grid's id: its members' run ids in the grid's order (each covers its λ and everything else)."""
    return content_id(["kl-grid", list(member_ids)])


def choose(grid: Sequence[float], valids: Sequence[float]) -> int:
    """Index of the λ whose expert validated best; the first in the grid's order among equals."""
    if len(grid) != len(valids) or not grid:
        raise ConfigError(f"{len(valids)} validation results for a grid of {len(grid)}.")
    best = max(valids)
    return next(i for i, v in enumerate(valids) if v == best)


def grid_metrics(grid: Sequence[float], valids: Sequence[float], chosen: int) -> dict[str, float]:
    """What the chosen expert's record gains: the chosen λ and each λ's best validation accuracy."""
    out = {"kl_chosen": float(grid[chosen]), "kl_grid_size": float(len(grid))}
    out.update({f"kl_grid_valid[{lam:g}]": float(v) for lam, v in zip(grid, valids, strict=True)})
    return out
