"""Evaluate a model on a task split (paper §4: base-model rows of Tables 1-2).

Pure: returns an `EvalResult` with per-sample rows and provenance; the catalog adapter
stores it. The run id is a content hash of everything that determines the result
(weights, task version, split, data file hashes, generation config, limit), so rerunning
the same evaluation replaces its rows instead of duplicating them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch

from t2core.errors import ConfigError, DataError
from t2core.ids import content_id, identity_fields
from t2core.models.registry import LoadedModel
from t2core.paths import resolve_data_dir
from t2core.sampling import GenerationConfig, Sampler, SVFWeights, make_sampler
from t2core.sampling.base import backend_tag, run_backend
from t2core.scoring import DEFAULT_SCHEME, check_scheme
from t2core.tasks import get_task
from t2core.tasks.base import Dataset, Task
from t2core.variants import BASE_REF, VariantRef


@dataclass(frozen=True)
class EvalConfig:
    task: str
    split: str = "test"
    limit: int | None = None  # first N samples of the split (None: all)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    # who judges the outputs (t2core.scoring): "t2" (the default), or "released" (the paper's code's
    # scorers, for a like-for-like comparison with its numbers; docs/scoring.md)
    scoring: str = DEFAULT_SCHEME

    def __post_init__(self) -> None:
        get_task(self.task).check_split(self.split)
        check_scheme(self.scoring)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit={self.limit} must be >= 1 (or None for the whole split).")

    def resolved(self) -> EvalConfig:
        """This config with every default filled in (max_new_tokens: the task's when None): what
        runs, and what the run id hashes."""
        if self.generation.max_new_tokens is not None:
            return self
        return replace(self, generation=replace(self.generation, max_new_tokens=get_task(self.task).max_new_tokens))


class EvalPlan(NamedTuple):
    """What `plan_eval` decided: the task, the data slice, the run id and the resolved config."""

    task: Task
    dataset: Dataset
    run_id: str
    cfg: EvalConfig


@dataclass
class SampleResult:
    idx: int
    sample_id: str
    prompt: str
    output: str
    parsed: str | None
    target: str
    correct: bool
    detail: str = ""
    n_new_tokens: int = 0
    # what answered this sample when it differs per sample (two-pass adaptation, paper §3.3); None: the run's
    expert_ids: tuple[str, ...] | None = None
    alphas: tuple[float, ...] | None = None
    decision: str | None = None  # the dispatch strategy's decision for this sample


@dataclass
class EvalResult:
    run_id: str
    kind: str
    ref: VariantRef
    model: str
    weights_hash: str
    task: str
    task_version: str
    split: str
    config: dict
    data_files: dict[str, str]
    samples: list[SampleResult]
    seconds: float
    seed: int
    strategy: str | None = None  # the adaptation strategy that chose the experts, if any
    extra_metrics: dict[str, float] = field(default_factory=dict)  # e.g. two-pass timings (paper Table 3)

    @property
    def variant(self) -> str:
        return self.ref.name

    @property
    def accuracy(self) -> float:
        return sum(s.correct for s in self.samples) / max(1, len(self.samples))

    @property
    def metrics(self) -> dict[str, float]:
        toks = sum(s.n_new_tokens for s in self.samples)
        return {"accuracy": self.accuracy, "n": float(len(self.samples)), "n_correct": float(sum(s.correct for s in self.samples)),
                "new_tokens": float(toks), "tokens_per_s": toks / self.seconds if self.seconds else 0.0,
                **self.extra_metrics}


def eval_record_config(cfg: EvalConfig, sampler: str, ref: VariantRef) -> dict:
    """The config an evaluation's run row records (its hash is the row's config_hash): the resolved
    EvalConfig, the sampler, the variant and, for two-pass runs, the strategy's settings that name
    it (`dispatch`); the same at the run's start and at its end."""
    out = {"eval": asdict(cfg), "sampler": sampler, "variant": ref.name}
    if ref.dispatch:
        out["dispatch"] = ref.dispatch
    return out


def eval_run_id(weights_hash: str, cfg: EvalConfig, task_version: str, data_files: dict[str, str],
                kind: str = "eval", variant: str = "base", backend: str = "hf") -> str:
    payload = [kind, weights_hash, identity_fields(cfg), task_version, sorted(data_files.values())]
    if variant != "base":  # base-model ids stay as they were before variants existed
        payload.append(variant)
    payload += backend_tag(backend)
    return content_id(payload)


def plan_eval(weights_hash: str, cfg: EvalConfig, data_dir: str | Path | None = None,
              variant: str = "base", backend: str = "hf") -> EvalPlan:
    """Load the data and compute the run id without generating or loading a model (only its
    weights hash), so callers (and Prefect cache keys) can skip finished runs cheaply.

    `variant` names what is evaluated on top of the base weights ("base", "svf:<expert id>", ...);
    `backend` the engine that answers (`run_backend`).
    The config is resolved here, once: the run id hashes exactly what `evaluate` then runs.
    """
    cfg = cfg.resolved()
    task = get_task(cfg.task)
    task.preflight()
    ds = task.load(cfg.split, resolve_data_dir(data_dir)).limit(cfg.limit)
    if not ds.samples:
        raise DataError(f"task {cfg.task!r} split {cfg.split!r} has no samples; nothing to evaluate.")
    return EvalPlan(task, ds, eval_run_id(weights_hash, cfg, task.version, ds.files, variant=variant,
                                                     backend=backend), cfg)


def evaluate(
    loaded: LoadedModel,
    cfg: EvalConfig,
    data_dir: str | Path | None = None,
    sampler: Sampler | None = None,
    progress: Callable[[int], None] | None = None,
    planned=None,
    ref: VariantRef = BASE_REF,
    weights: Callable[[], contextlib.AbstractContextManager] | None = None,
    svf: SVFWeights | None = None,
) -> EvalResult:
    """Greedy evaluation; `weights()` (e.g. an SVF expert materialised) is active while generating.

    `svf` sends an expert as vectors to a sampler that applies it itself (`receives_svf`).
    """
    task, ds, run_id, cfg = planned or plan_eval(loaded.weights_hash, cfg, data_dir, ref.name, run_backend(sampler))
    gen = cfg.generation  # resolved by plan_eval
    sampler = sampler or make_sampler("hf", loaded=loaded)
    torch.manual_seed(gen.seed)
    t0 = time.perf_counter()
    with (weights or contextlib.nullcontext)():
        completions = answer(task, ds.samples, sampler, gen, progress, svf=svf)
    seconds = time.perf_counter() - t0
    rows = sample_rows(task, ds.samples, completions, scoring=cfg.scoring)
    return EvalResult(run_id=run_id, kind="eval", ref=ref, model=loaded.alias, weights_hash=loaded.weights_hash,
                      task=cfg.task, task_version=task.version, split=cfg.split,
                      config=eval_record_config(cfg, sampler.name, ref), data_files=ds.files, samples=rows, seconds=seconds,
                      seed=gen.seed)


def answer(task: Task, samples: list, sampler: Sampler, gen: GenerationConfig, progress=None, **sampler_kw) -> list:
    """The task's prompts answered by `sampler` (one Completion each, in order): the candidate it picks
    by likelihood for a choice task, the text it writes otherwise. The one answering path of an
    evaluation and of two-pass's pass 2 (`sampler_kw`: an expert sent as vectors)."""
    convs = [task.messages(s) for s in samples]
    if task.output_type == "choice":
        return sampler.choose(convs, [task.candidates(s) for s in samples], gen, progress=progress, **sampler_kw)
    return sampler.generate(convs, gen, progress=progress, **sampler_kw)


def sample_rows(task: Task, samples: list, completions: list, decisions: list | None = None,
                scoring: str = DEFAULT_SCHEME) -> list[SampleResult]:
    """One scored row per sample (the catalog's `samples`), with pass 1's decision when there was one."""
    scores = task.score_many(samples, [c.text for c in completions], scoring)
    rows = []
    for i, (s, comp, sc) in enumerate(zip(samples, completions, scores, strict=True)):
        d = decisions[i] if decisions is not None else None
        picked = {} if d is None else {"expert_ids": d.expert_ids, "alphas": d.alphas, "decision": d.label}
        rows.append(SampleResult(i, s.id, task.messages(s)[-1]["content"], comp.text, sc.parsed, task.reference(s),
                                 sc.correct, sc.detail, comp.n_new_tokens, **picked))
    return rows
