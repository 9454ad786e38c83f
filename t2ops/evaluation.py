"""Evaluation of the base model, an SVF expert or a PEFT adapter on one task slice (paper §4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from catalog import Catalog
from catalog import records as rec
from catalog.records import RunRow
from t2core import evaluate as core
from t2core.evaluate import EvalConfig, EvalResult, eval_record_config
from t2core.models.registry import LoadedModel
from t2core.sampling import check_sampler, make_sampler
from t2core.sampling.base import run_backend
from t2core.variants import VariantRef, describe_ref, resolve_variant
from t2ops.lifecycle import recorded


@dataclass(frozen=True)
class EvalRequest:
    eval: EvalConfig
    expert: str | None = None  # an expert id (svf:<hex>), an expert file, or an adapter (<method>:<id>)
    sampler: str = "hf"  # hf (in-process), or proc / vllm (their own model copy, fed SVF vectors)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_sampler(self.sampler)


@dataclass(frozen=True)
class EvalPlan:
    """The run as planned from content: its id, what is applied, the resolved config and the data."""

    run_id: str
    variant: VariantRef
    core: core.EvalPlan  # task, data slice, run id, resolved EvalConfig

    @property
    def cfg(self) -> EvalConfig:
        return self.core.cfg


def plan(req: EvalRequest, weights_hash: str) -> EvalPlan:
    variant = describe_ref(weights_hash, req.expert)  # verified: a bad reference fails before any row
    p = core.plan_eval(weights_hash, req.eval, req.data_dir, variant.name, run_backend(req.sampler))
    return EvalPlan(p.run_id, variant, p)


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str
    variant: str
    accuracy: float | None
    n: int
    reused: bool  # found completed in the catalog: nothing ran
    result: EvalResult | None = None
    same_as: str | None = None  # the base run whose rows this one copies (an expert with z = 1), or None


def run(req: EvalRequest, loaded: LoadedModel, cat: Catalog, *, force: bool = False,
        progress: Callable[[int], None] | None = None, planned: EvalPlan | None = None) -> EvalOutcome:
    """`planned`: this request's plan for `loaded` when the caller already made it."""
    p = planned or plan(req, loaded.weights_hash)
    rec.record_model(cat, loaded)
    if not force and rec.is_completed(cat, p.run_id):
        return EvalOutcome(p.run_id, p.variant.name, rec.metric(cat, p.run_id, "accuracy"),
                           int(rec.metric(cat, p.run_id, "n") or 0), True)
    variant = resolve_variant(loaded, p.variant, dtype=p.cfg.generation.dtype)
    if variant.identity:  # W' = W: the base run's rows, run (or found) once
        base = run(dataclasses.replace(req, expert=None), loaded, cat, force=force, progress=progress)
        row = _row(p, loaded, req.sampler)
        rec.copy_eval(cat, base.run_id, row)
        return EvalOutcome(p.run_id, p.variant.name, base.accuracy, base.n, False, base.result, same_as=base.run_id)
    smp = make_sampler(req.sampler, loaded=loaded)
    apply = variant.apply_with(smp)
    row = _row(p, loaded, smp.name)
    res = recorded(cat, row,
                   lambda: core.evaluate(loaded, p.cfg, req.data_dir, sampler=smp, progress=progress, planned=p.core,
                                         ref=p.variant, **apply),
                   lambda res: rec.record_eval(cat, res, n_records=p.core.dataset.n_total))
    return EvalOutcome(p.run_id, p.variant.name, res.accuracy, len(res.samples), False, res)


def _row(p: EvalPlan, loaded: LoadedModel, sampler_name: str) -> RunRow:
    task = p.core.task
    return RunRow(run_id=p.run_id, kind="eval", model=loaded.alias, weights_hash=loaded.weights_hash, task=task.name,
                  task_version=task.version, split=p.cfg.split, config=eval_record_config(p.cfg, sampler_name, p.variant),
                  data_files=p.core.dataset.files, seed=p.cfg.generation.seed, variant=p.variant)
