"""Evaluation of the base model, an SVF expert or a PEFT adapter on one task slice (paper §4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from t2core import evaluate as core
from t2core.evaluate import EvalConfig, EvalResult, eval_record_config
from t2core.models.registry import LoadedModel
from t2core.sampling import check_sampler, make_sampler
from t2core.sampling.base import run_backend
from t2core.variants import VariantRef, describe_ref, is_identity, resolve_variant
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import CopiedEval, EvalRecord, RunRow


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
    req: EvalRequest
    row: RunRow
    same_as: EvalPlan | None = None  # W' = W (an SVF expert with z = 1): the base run whose rows it copies
    outputs: tuple = ()

    @property
    def cfg(self) -> EvalConfig:
        return self.core.cfg


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str
    variant: str
    accuracy: float | None
    n: int
    reused: bool  # found completed in the catalog: nothing ran
    result: EvalResult | None = None
    same_as: str | None = None  # the base run whose rows this one copies (an expert with z = 1), or None


class EvalOp(OperationBase):
    name = "eval"

    def plan(self, req: EvalRequest, ident: ModelIdent) -> EvalPlan:
        variant = describe_ref(ident.weights_hash, req.expert)  # verified: a bad reference fails before any row
        p = core.plan_eval(ident.weights_hash, req.eval, req.data_dir, variant.name, run_backend(req.sampler))
        task = p.task
        row = RunRow(run_id=p.run_id, kind="eval", model=ident.alias, weights_hash=ident.weights_hash, task=task.name,
                     task_version=task.version, split=p.cfg.split,
                     config=eval_record_config(p.cfg, req.sampler, variant), data_files=p.dataset.files,
                     seed=p.cfg.generation.seed, variant=variant)
        same_as = self.plan(dataclasses.replace(req, expert=None), ident) if is_identity(variant) else None
        return EvalPlan(p.run_id, variant, p, req, row, same_as)

    def done(self, plan: EvalPlan, recorded: Recorded) -> EvalOutcome:
        m = recorded.metrics
        return EvalOutcome(plan.run_id, plan.variant.name, m.get("accuracy"), int(m.get("n") or 0), True)

    def size(self, plan: EvalPlan) -> int:
        return len(plan.core.dataset)

    def needs(self, plan: EvalPlan) -> dict:
        return {"base": (self, plan.same_as)} if plan.same_as else {}

    def run(self, plan: EvalPlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[EvalOutcome]:
        if plan.same_as:  # W' = W: the base run's rows, run (or found) once
            base: EvalOutcome = deps["base"]
            return Produced(EvalOutcome(plan.run_id, plan.variant.name, base.accuracy, base.n, False, base.result,
                                        same_as=base.run_id), (CopiedEval(base.run_id, plan.row),))
        variant = resolve_variant(loaded, plan.variant, dtype=plan.cfg.generation.dtype)
        smp = make_sampler(plan.req.sampler, loaded=loaded)
        res = core.evaluate(loaded, plan.cfg, plan.req.data_dir, sampler=smp, progress=hooks.progress,
                            planned=plan.core, ref=plan.variant, **variant.apply_with(smp))
        return Produced(EvalOutcome(plan.run_id, plan.variant.name, res.accuracy, len(res.samples), False, res),
                        (EvalRecord(res, plan.core.dataset.n_total),))

    def footprint(self, req: EvalRequest, ctx):
        """A batch generated (or its candidates scored), W' swapped in for an SVF expert (t2core/plan/)."""
        from t2core.methods import method_of_product
        from t2core.plan.work import evaluation

        m = method_of_product(req.expert.partition(":")[0]) if req.expert else None
        svf = req.expert is not None and (m is None or m.takes_vectors)  # an SVF expert's W' is swapped in
        return evaluation(req.eval, ctx, expert=svf, remote=req.sampler != "hf")


OP = register_operation(EvalOp())
