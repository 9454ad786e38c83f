"""SVD once (paper §3.1): decompose the targeted matrices, store them, record them."""

from __future__ import annotations

from dataclasses import dataclass

from t2core.models.registry import LoadedModel
from t2core.models.targets import check_target_spec
from t2core.svd import KIND, SVDInfo, decomposition_key, ensure_svd, stored_svd
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import DecompositionRecord


@dataclass(frozen=True)
class SvdRequest:
    targets: str = "mlp"  # mlp (paper), attn or both
    rebuild: bool = False  # recompute even when stored (executed with force)

    def __post_init__(self) -> None:
        check_target_spec(self.targets)


@dataclass(frozen=True)
class SvdPlan:
    key: str  # the decomposition's artifact key
    req: SvdRequest
    model: str
    seed: int
    row = None  # recorded once done: there is no running SVD row

    @property
    def run_id(self) -> str:
        return f"svd-{self.key}"

    @property
    def outputs(self) -> tuple[tuple[str, str], ...]:
        return ((KIND, self.key),)


@dataclass(frozen=True)
class SvdOutcome:
    info: SVDInfo
    new: bool  # False: the catalog had it already (nothing was decomposed or written)


class SvdOp(OperationBase):
    name = "svd"

    def plan(self, req: SvdRequest, ident: ModelIdent) -> SvdPlan:
        key = decomposition_key(ident.weights_hash, req.targets, ident.target_names(req.targets))
        return SvdPlan(key, req, ident.alias, ident.seed)

    def done(self, plan: SvdPlan, recorded: Recorded) -> SvdOutcome:
        return SvdOutcome(stored_svd(plan.key), False)

    def run(self, plan: SvdPlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[SvdOutcome]:
        info = ensure_svd(loaded, plan.req.targets, rebuild=plan.req.rebuild, progress=hooks.progress)
        return Produced(SvdOutcome(info, True), (DecompositionRecord(info, plan.model, plan.seed),))

    def footprint(self, req: SvdRequest, ctx):
        """One matrix decomposed at a time; the factors written to disk in float32 (t2core/plan/)."""
        from t2core.plan import footprint as fp
        from t2core.plan.work import Work

        s = ctx.shape
        flops = sum(12.0 * o * i * min(o, i) for o, i in s.matrices(req.targets))
        return Work(fp.Footprint((("SVD workspace", fp.svd_workspace(s, req.targets)),),
                                 disk=fp.factors(s, req.targets), flops=flops))


OP = register_operation(SvdOp())
