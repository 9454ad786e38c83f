"""The cross-entropy method over mixing coefficients α (paper §3.3, few-shot adaptation).

z' = Σ_k α_k z_k; CEM keeps a Gaussian over α (one coefficient per expert, or per expert and
layer), draws a population, scores it, and refits the Gaussian to the elite (smoothed with the
previous one, the usual guard against the std collapsing on a small elite). α is clipped to
[0, 1] (the paper's bounds) and, with `normalise`, divided by its sum so the mixture stays on
the experts' scale. Fitness is a pair (accuracy on the few-shot prompts, mean log-likelihood
of their correct answers), compared lexicographically: the likelihood breaks ties between
candidates with the same accuracy, which on 3-20 shots are frequent (paper §3.3, A.4). What the
likelihood is comes from the scorer (`t2core/adapt/fewshot.py`): the gold option's on choice tasks, the
candidate's own correct answers' on generated tasks with `tie_break="loglik"`, else 0 (no tie-break).

Pure and resumable: the state after each generation (`CEMState`) is a small JSON-able record;
generation g draws from a generator seeded by (seed, g), so a search resumed from its last
state draws exactly what the uninterrupted search would have drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch

from t2core.errors import ConfigError
from t2core.settings import step_seed

Fitness = tuple[float, float]  # (accuracy, mean log-likelihood of the correct answers)


@dataclass(frozen=True)
class CEMConfig:
    population: int = field(default=32, metadata={"help": "candidates per generation (32: the released code's "
                                                                 "cfgs/optimization/cem.yaml; the paper's text gives "
                                                                 "none)"})
    elite_ratio: float = field(default=0.2, metadata={"help": "fraction refitted (0.2: the released code's; the paper's "
                                                              "text gives none)"})
    generations: int = field(default=100, metadata={"help": "at most this many generations (paper A.4: up to "
                                                               "100; CEM-light, Appendix D: 10)"})
    patience: int = field(default=10, metadata={"help": "stop after this many generations without a better best"})
    init_std: float = field(default=0.3, metadata={"help": "initial std of every coefficient"})
    min_std: float = field(default=0.001, metadata={"help": "stop when every std falls below this"})
    smoothing: float = field(default=0.7, metadata={"help": "weight of the elite's estimate in each refit "
                                                            "(the rest keeps the previous Gaussian)"})
    normalise: bool = field(default=False, metadata={"help": "divide α by its sum (per layer with per_layer)"})
    per_layer: bool = field(default=False, metadata={"help": "one α per expert and layer instead of per expert"})
    seed: int = 0

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ConfigError(f"CEM population={self.population} must be >= 2.")
        if not 0 < self.elite_ratio < 1 or round(self.population * self.elite_ratio) < 1:
            raise ConfigError(f"CEM elite_ratio={self.elite_ratio} must be in (0, 1) and leave at least one elite "
                              f"of {self.population}.")
        for name in ("generations", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"CEM {name}={getattr(self, name)} must be >= 1.")
        if not 0 < self.smoothing <= 1:
            raise ConfigError(f"CEM smoothing={self.smoothing} must be in (0, 1].")
        if self.init_std <= 0 or self.min_std < 0:
            raise ConfigError(f"CEM init_std={self.init_std} must be > 0 and min_std={self.min_std} >= 0.")

    @property
    def n_elite(self) -> int:
        return max(1, round(self.population * self.elite_ratio))


@dataclass(frozen=True)
class CEMState:
    """Where a search stands after `generation` generations (what a checkpoint holds)."""

    shape: tuple[int, ...]  # (K,) or (K, L)
    mean: tuple[float, ...]  # flattened, len = prod(shape)
    std: tuple[float, ...]
    generation: int = 0
    best: tuple[float, ...] = ()
    best_fitness: tuple[float, float] = (float("-inf"), float("-inf"))
    since_best: int = 0  # generations without a better best
    history: tuple[dict, ...] = ()  # per generation: best, mean and elite fitness
    done: str = ""  # why the search stopped ("" while it runs)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> CEMState:
        return cls(tuple(d["shape"]), tuple(d["mean"]), tuple(d["std"]), d["generation"], tuple(d["best"]),
                   tuple(d["best_fitness"]), d["since_best"], tuple(d["history"]), d["done"])

    def alpha(self, flat: tuple[float, ...] | None = None) -> torch.Tensor:
        return torch.tensor(flat if flat is not None else self.best).reshape(self.shape)


def start(cfg: CEMConfig, k: int, n_layers: int = 1) -> CEMState:
    """The initial Gaussian: every coefficient at 1/K (the experts' average), std `init_std`."""
    if k < 1:
        raise ConfigError("few-shot adaptation needs at least one expert.")
    shape = (k, n_layers) if cfg.per_layer else (k,)
    n = k * (n_layers if cfg.per_layer else 1)
    return CEMState(shape, (1.0 / k,) * n, (cfg.init_std,) * n)


def bound(cfg: CEMConfig, x: torch.Tensor) -> torch.Tensor:
    """Clip candidates (P, K[, L]) to [0, 1]; with `normalise`, make each expert axis sum to 1."""
    x = x.clamp(0.0, 1.0)
    if cfg.normalise:
        x = x / x.sum(dim=1, keepdim=True).clamp_min(1e-8)
    return x


def population(cfg: CEMConfig, state: CEMState) -> torch.Tensor:
    """Generation `state.generation`'s candidates (P, K[, L]), drawn from its own seed."""
    g = torch.Generator().manual_seed(step_seed(cfg.seed, state.generation))
    mean, std = torch.tensor(state.mean), torch.tensor(state.std)
    x = mean + std * torch.randn(cfg.population, mean.numel(), generator=g)
    if state.generation == 0:
        x[0] = mean  # the starting point itself is always scored
    return bound(cfg, x.reshape(cfg.population, *state.shape))


def update(cfg: CEMConfig, state: CEMState, pop: torch.Tensor, fitness: list[Fitness]) -> CEMState:
    """Refit the Gaussian to the elite of `pop` and note the best; decide whether to stop."""
    if len(fitness) != pop.shape[0]:
        raise ConfigError(f"{len(fitness)} fitness values for a population of {pop.shape[0]}.")
    order = sorted(range(len(fitness)), key=lambda i: fitness[i], reverse=True)
    elite = pop.reshape(pop.shape[0], -1)[order[: cfg.n_elite]]  # (E, D)
    e_mean = elite.mean(0)
    e_std = elite.std(0, unbiased=False) if elite.shape[0] > 1 else torch.zeros(elite.shape[1])
    b = cfg.smoothing  # smoothed refit: an elite of a few candidates would otherwise collapse the std at once
    mean = b * e_mean + (1 - b) * torch.tensor(state.mean)
    std = b * e_std + (1 - b) * torch.tensor(state.std)
    top = order[0]
    improved = tuple(fitness[top]) > tuple(state.best_fitness)
    best = tuple(pop[top].reshape(-1).tolist()) if improved else state.best
    best_fitness = tuple(fitness[top]) if improved else state.best_fitness
    since = 0 if improved else state.since_best + 1
    gen = state.generation + 1
    record = {"generation": gen, "best": list(best_fitness), "top": list(fitness[top]),
              "mean_accuracy": sum(f[0] for f in fitness) / len(fitness),
              "elite_accuracy": sum(fitness[i][0] for i in order[: cfg.n_elite]) / cfg.n_elite}
    done = ("generations" if gen >= cfg.generations else "patience" if since >= cfg.patience
            else "converged" if bool((std < cfg.min_std).all()) else "")
    return replace(state, mean=tuple(mean.tolist()), std=tuple(std.tolist()), generation=gen, best=best,
                   best_fitness=best_fitness, since_best=since, history=(*state.history, record), done=done)


def search(cfg: CEMConfig, state: CEMState, score: Callable[[torch.Tensor], list[Fitness]],
           on_generation: Callable[[CEMState], None] | None = None) -> CEMState:
    """Run generations from `state` until one of the stopping rules holds; `score` maps a population
    (P, K[, L]) to its fitness; `on_generation(state)` after each one (checkpoints, progress)."""
    while not state.done:
        t0 = time.perf_counter()
        pop = population(cfg, state)
        state = update(cfg, state, pop, score(pop))
        # the generation's wall time in its history entry: a resumed search still knows what it cost in all
        *past, last = state.history
        state = replace(state, history=(*past, {**last, "seconds": time.perf_counter() - t0}))
        if on_generation:
            on_generation(state)
    return state
