"""Training by next-token prediction on reference solutions: the PEFT baselines (LoRA-NTP paper §4.1;
IA3, DoRA Table 7) and SVF-NTP (Table 4's ablation)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from t2core.methods import Method, method_of
from t2core.models.registry import LoadedModel
from t2core.training.ntp import NTPConfig, NTPResult, plan_ntp, train_ntp
from t2core.variants import VariantRef
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import RunRow
from t2ops.training import train_row, trained_record


@dataclass(frozen=True)
class BaselineRequest:
    ntp: NTPConfig
    data_dir: str | None = None


@dataclass(frozen=True)
class BaselinePlan:
    run_id: str
    row: RunRow
    outputs: tuple[tuple[str, str], ...]
    req: BaselineRequest
    method: Method
    adapter_id: str  # the content key of the result (weights, config, data hashes)


@dataclass(frozen=True)
class BaselineOutcome:
    run_id: str
    expert_id: str  # what `t2 eval --expert` takes: <method>:<adapter id>, or svf:<hex> for SVF-NTP
    path: Path | None
    reused: bool  # found completed in the catalog: nothing ran
    metrics: dict
    result: NTPResult | None = None


class BaselineOp(OperationBase):
    name = "baseline"

    def plan(self, req: BaselineRequest, ident: ModelIdent) -> BaselinePlan:
        ds, aid = plan_ntp(ident.weights_hash, req.ntp, req.data_dir)
        method = method_of("ntp", req.ntp.method)
        run_id = f"{req.ntp.method}-{aid}"
        row = train_row(ident, req.ntp, method, run_id, ds.files)
        if method.product != "svf":  # an adapter's id is known before it trains; an SVF expert's from its content
            row = replace(row, variant=VariantRef(method.product, (aid,)))
        return BaselinePlan(run_id, row, ((method.store, aid),), req, method, aid)

    def size(self, plan: BaselinePlan) -> int:
        return plan.req.ntp.steps

    def done(self, plan: BaselinePlan, recorded: Recorded) -> BaselineOutcome:
        eid, path = recorded.expert or (f"{plan.method.product}:{plan.adapter_id}", None)
        return BaselineOutcome(plan.run_id, eid, Path(path) if path else None, True, recorded.metrics)

    def run(self, plan: BaselinePlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[BaselineOutcome]:
        """Train (or find the stored adapter, then only record it); a failure leaves no half-written adapter."""
        res = train_ntp(loaded, plan.req.ntp, plan.req.data_dir, on_log=hooks.on_log)
        metrics = {"n_trainable": float(res.n_trainable), "steps": float(len(res.losses))}
        if res.losses:
            metrics.update(first_loss=res.losses[0], final_loss=res.losses[-1])
        eid = res.variant(plan.method.product)
        return Produced(BaselineOutcome(plan.run_id, eid, res.path, False, metrics, res),
                        (trained_record(plan.row, plan.method, eid, res.path, loaded.family, metrics, res.seconds),))

    def footprint(self, req: BaselineRequest, ctx):
        """Next-token prediction on reference solutions, one micro-batch's graph at a time (t2core/plan/)."""
        from t2core.plan.work import ntp_training

        return ntp_training(req.ntp, ctx)


OP = register_operation(BaselineOp())
