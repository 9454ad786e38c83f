"""Few-shot adaptation (paper §3.3): search mixing weights α of the experts on a few prompts of the
unseen task with CEM, and keep z' = Σ_k α_k z_k as a new expert.

The shots come from the unseen task's train or validation split, never from test (the official
scripts draw them from the test split and pick the best candidate on the rest of it; here the
test split is only ever evaluated). They are drawn by a seeded permutation of the split, so the
same seed gives the same shots.

Scoring a population: `batched` runs all P candidates × n shots in one sampler call where each
row carries its own mixture (the factored per-row path, `RowExperts`), instead of materialising
W' once per candidate and scoring the shots with it (`one_at_a_time`, what the official code does
with vLLM weight reloads). `bench/cem.py` measures the two side by side.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from t2core.adapt.cem import CEMConfig, Fitness
from t2core.errors import ConfigError, DataError
from t2core.ids import content_id, identity_fields
from t2core.paths import resolve_data_dir
from t2core.precision import autocast_for
from t2core.sampling.base import GenerationConfig, RowExperts, Sampler, backend_tag
from t2core.settings import resolved_dtype
from t2core.svf.bank import ExpertBank
from t2core.svf.mixture import mix_weights
from t2core.tasks import get_task
from t2core.tasks.base import Dataset, Task

SHOT_SPLITS = ("train", "valid")
#: How candidates with the same accuracy on the shots are told apart on a generated task (choice tasks always
#: use the gold candidate's log-probability): `none` (t2 before issue 34: the earliest wins, often the uniform
#: α) or `loglik`, the paper's (§3.3, A.4): "the highest average log-likelihood across the tokens of its
#: generated correct answers", as the released code computes it (each correct answer's mean token log-prob
#: under the candidate's own weights, averaged over its correct answers; 0 with none correct).
TIE_BREAKS = ("none", "loglik")


@dataclass(frozen=True)
class FewShotConfig:
    task: str = field(metadata={"help": "the unseen task to adapt to"})
    shots: int = field(default=10, metadata={"help": "few-shot prompts (paper: 3-20, default 10)"})
    split: str = field(default="train", metadata={"help": "where the shots come from: train or valid, never test"})
    cem: CEMConfig = field(default_factory=CEMConfig)
    batch_size: int = field(default=32, metadata={"help": "rows per forward when scoring the population",
                                                  "identity": False})  # speed, not the result
    dtype: str = "float32"
    max_new_tokens: int | None = field(default=None, metadata={"help": "generated tasks: cap (None: task's)"})
    batched: bool = field(default=True, metadata={"help": "score the whole population in one batched call",
                                                  "identity": False})  # speed, not the result
    tie_break: str = field(default="none", metadata={
        "help": "generated tasks: none, or loglik (paper: the mean token log-likelihood of the candidate's own "
                "correct answers breaks ties in accuracy)", "legacy": "none"})

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if self.split not in SHOT_SPLITS:
            raise ConfigError(f"few-shot split {self.split!r}: the shots come from train or valid, never test.")
        if self.split not in task.splits:
            avail = [s for s in task.splits if s in SHOT_SPLITS]
            raise DataError(f"task {self.task!r} has no {self.split!r} split to draw shots from"
                            + (f"; use --shot-split {avail[0]}." if avail else
                               " (only test, which few-shot adaptation never reads); it cannot be adapted few-shot."))
        if self.shots < 1:
            raise ConfigError(f"shots={self.shots} must be >= 1.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1.")
        if self.tie_break not in TIE_BREAKS:
            raise ConfigError(f"few-shot tie_break={self.tie_break!r} must be one of {', '.join(TIE_BREAKS)}.")
        resolved_dtype(self)  # "auto" -> this machine's dtype, before any id is hashed

    @property
    def generation(self) -> GenerationConfig:
        task = get_task(self.task)
        return GenerationConfig(max_new_tokens=self.max_new_tokens or task.max_new_tokens,
                                batch_size=self.batch_size, dtype=self.dtype)


def pick_shots(cfg: FewShotConfig, data_dir: str | Path | None = None) -> Dataset:
    """`cfg.shots` items of the unseen task's shot split, by a permutation seeded with the CEM seed."""
    task = get_task(cfg.task)
    task.preflight()
    ds = task.load(cfg.split, resolve_data_dir(data_dir))
    ok = [s for s in ds.samples if not task.unjudgeable(s)]
    if len(ok) < cfg.shots:
        raise DataError(f"task {cfg.task!r} split {cfg.split!r} has {len(ok)} usable items, fewer than "
                        f"shots={cfg.shots}.")
    picked = sorted(random.Random(f"shots:{cfg.cem.seed}").sample(range(len(ok)), cfg.shots))
    return Dataset(ds.task, ds.split, [ok[i] for i in picked], ds.files, ds.n_total)


def few_shot_run_id(weights_hash: str, expert_ids: list[str], cfg: FewShotConfig, task_version: str,
                    shots: Dataset, backend: str = "hf") -> str:
    """Content id of a search: base weights, the experts, the config, the task, the shots and the engine
    that scores them (`run_backend`)."""
    payload = ["few-shot", weights_hash, sorted(expert_ids), identity_fields(cfg), task_version,
               sorted(shots.files.values()), [s.id for s in shots.samples]] + backend_tag(backend)
    return content_id(payload)


class ShotScorer:
    """Fitness of mixing weights on the shots: (accuracy, mean log-likelihood of the gold answer).

    The log-likelihood is the gold candidate's log-probability normalised over the item's options
    (choice tasks); on generated tasks, with `tie_break="loglik"`, the mean token log-likelihood of the
    candidate's own correct answers under its weights (one teacher-forced forward of those answers, next to
    the generation that wrote them), else 0 (no tie-break)."""

    def __init__(self, sampler: Sampler, model, svd: dict, bank: ExpertBank, task: Task, shots: Dataset,
                 cfg: FewShotConfig, origin=None) -> None:
        self.sampler, self.model, self.svd, self.bank = sampler, model, svd, bank
        self.origin = origin  # the model's safetensors directory: W' swapped in place on the host (svf/apply.py)
        self.task, self.shots, self.cfg, self.gen = task, shots, cfg, cfg.generation
        self.convs = [task.messages(s) for s in shots.samples]
        self.choice = task.output_type == "choice"
        self.cands = [task.candidates(s) for s in shots.samples] if self.choice else []

    def __call__(self, pop: torch.Tensor) -> list[Fitness]:
        return self.batched(pop) if self.cfg.batched and self.sampler.takes_rows else self.one_at_a_time(pop)

    def batched(self, pop: torch.Tensor) -> list[Fitness]:
        """All P candidates × n shots in one sampler call, each row with its own mixture."""
        n, p = len(self.convs), pop.shape[0]
        rows = RowExperts(self.bank, pop.float().repeat_interleave(n, dim=0), self.svd, self.cfg.dtype)  # (P·n, K[,L])
        outs = self._run(self.convs * p, rows=rows)
        return [self._fitness(outs[i * n:(i + 1) * n], pop[i]) for i in range(p)]

    def one_at_a_time(self, pop: torch.Tensor) -> list[Fitness]:
        """One materialised W' per candidate, the shots scored with it."""
        from t2core.svf import materialised_scales

        out = []
        for alpha in pop:
            with materialised_scales(self.model, self.svd, mix_weights(self.bank, alpha), dtype=self.cfg.dtype,
                                     origin=self.origin):
                outs = self._run(self.convs)
            out.append(self._fitness(outs, alpha))
        return out

    def _run(self, convs: list, rows: RowExperts | None = None) -> list:
        if self.choice:
            k = len(convs) // len(self.convs)
            return self.sampler.choose(convs, self.cands * k, self.gen, rows=rows)
        return self.sampler.generate(convs, self.gen, rows=rows)

    def _fitness(self, outs: list, alpha: torch.Tensor) -> Fitness:
        acc, ll = fitness(self.task, self.shots.samples, outs)
        if self.choice or self.cfg.tie_break == "none":
            return acc, ll
        correct = [s.correct for s in self.task.score_many(self.shots.samples, [o.text for o in outs])]
        return acc, answer_loglik(self.model, self.svd, mix_weights(self.bank, alpha), outs, correct, self.cfg.dtype,
                                  self.origin)


def answer_loglik(model, svd: dict, weights, outs: list, correct: list[bool], dtype: str = "float32",
                  origin=None) -> float:
    """The paper's tie-break (§3.3, A.4): each correct answer's mean token log-likelihood under `weights` (the
    candidate's own W'), averaged over the correct answers; 0 when none is correct (the released code's value).
    The answers' tokens are the generated ones (`Completion.prompt_ids` / `completion_ids`)."""
    from t2core.logprobs import sequence_logprobs
    from t2core.svf import materialised_scales

    idx = [i for i, ok in enumerate(correct) if ok]
    if not idx:
        return 0.0
    if any(outs[i].prompt_ids is None or outs[i].completion_ids is None for i in idx):
        raise ConfigError("the sampler returned no token ids; few-shot tie_break='loglik' needs them (use hf).")
    dev = next(model.parameters()).device
    with torch.no_grad(), materialised_scales(model, svd, weights, dtype=dtype, origin=origin), autocast_for(dtype, dev):
        total, n = sequence_logprobs(model, [outs[i].prompt_ids for i in idx], [outs[i].completion_ids for i in idx],
                                     pad_id=0)  # left padding is masked out: its id does not matter
    return float((total / n.clamp(min=1)).mean())


def fitness(task: Task, samples: list, outs: list) -> Fitness:
    """(accuracy, mean log-likelihood of the gold answer) of completions `outs` on `samples`: for choice
    tasks the gold candidate's log-probability normalised over the item's options, else 0 (no tie-break)."""
    if task.output_type == "choice":
        golds = [task.gold_candidate(s) for s in samples]
        correct = [o.choice == g for o, g in zip(outs, golds, strict=True)]
        ll = [o.choice_logprobs[g] if o.choice_logprobs else 0.0 for o, g in zip(outs, golds, strict=True)]
    else:
        correct = [s.correct for s in task.score_many(samples, [o.text for o in outs])]
        ll = [0.0] * len(outs)
    return (sum(correct) / len(correct), sum(ll) / len(ll))

