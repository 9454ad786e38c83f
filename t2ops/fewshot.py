"""The few-shot search of self-adaptation (paper §3.3), recorded: CEM over the experts' mixing weights
on shots of the unseen task's train/valid split.

Recorded as a run of kind `adapt` (config: the experts, α, the shots' ids, the search history) and
stored as an expert; resumable from its last generation (t2core/adapt/search.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from t2core.adapt.fewshot import FewShotConfig
from t2core.adapt.search import SearchPlan, SearchResult, plan_search, search, stored_search
from t2core.artifacts import ArtifactStore
from t2core.experts import KIND, ExpertRef
from t2core.models.registry import LoadedModel
from t2core.sampling import check_exact_sampler, make_sampler
from t2core.sampling.base import run_backend
from t2core.tasks import get_task
from t2core.variants import VariantRef
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import RunRow, SearchRecord


@dataclass(frozen=True)
class FewShotRequest:
    cfg: FewShotConfig
    experts: tuple[str, ...]  # expert ids or files: the mixture's ingredients
    sampler: str = "hf"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_exact_sampler(self.sampler, "a few-shot search")


@dataclass(frozen=True)
class FewShotPlan:
    run_id: str
    row: RunRow
    outputs: tuple[tuple[str, str], ...]
    req: FewShotRequest
    search: SearchPlan


class FewShotOp(OperationBase):
    name = "few-shot"

    def plan(self, req: FewShotRequest, ident: ModelIdent) -> FewShotPlan:
        sp = plan_search(ident.weights_hash, req.cfg, [ExpertRef.resolve(e) for e in req.experts], req.data_dir,
                         run_backend(req.sampler))
        row = RunRow(run_id=sp.run_id, kind="adapt", model=ident.alias, weights_hash=ident.weights_hash,
                     task=req.cfg.task, task_version=get_task(req.cfg.task).version, split=req.cfg.split,
                     config={"few_shot": asdict(req.cfg), "experts": [e.id for e in sp.experts],
                             "shots": [s.id for s in sp.shots.samples]},
                     data_files=sp.shots.files, seed=req.cfg.cem.seed,
                     variant=VariantRef("svf", tuple(e.id for e in sp.experts)), strategy="few-shot")
        return FewShotPlan(sp.run_id, row, ((KIND, sp.run_id),), req, sp)

    def size(self, plan: FewShotPlan) -> int:
        return plan.req.cfg.cem.generations

    def done(self, plan: FewShotPlan, recorded: Recorded) -> SearchResult:
        return stored_search(plan.search)

    def run(self, plan: FewShotPlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[SearchResult]:
        store = ArtifactStore()
        smp = None if store.exists(KIND, plan.run_id) else make_sampler(plan.req.sampler, loaded=loaded)
        res = search(loaded, plan.req.cfg, plan.search, smp, store, hooks.on_generation)
        return Produced(res, (SearchRecord(plan.row, res),))

    def footprint(self, req: FewShotRequest, ctx):
        """CEM's population scored on the shots with per-row mixtures (t2core/plan/)."""
        from t2core.plan.work import few_shot

        return few_shot(req.cfg, ctx, len(req.experts), remote=req.sampler != "hf")


OP = register_operation(FewShotOp())
