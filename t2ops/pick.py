"""A LoRA chosen on the few-shot prompts (Table 2's LoRA row chosen without test data): each adapter
scored on the shots the few-shot search uses, the best kept; recorded as a run of kind `select`."""

from __future__ import annotations

from dataclasses import dataclass

from t2core.adapt.fewshot import FewShotConfig, pick_shots
from t2core.adapt.pick import pick_best, shot_score
from t2core.errors import ConfigError
from t2core.ids import content_id
from t2core.models.registry import LoadedModel
from t2core.sampling import make_sampler
from t2core.tasks import get_task
from t2core.tasks.base import Dataset
from t2core.variants import VariantRef, describe_ref, resolve_variant
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import PickRecord, RunRow


@dataclass(frozen=True)
class PickRequest:
    """Score each adapter on the few-shot prompts of `cfg.task` and keep the best. `cfg` only says which
    shots: the same as the few-shot search's."""

    cfg: FewShotConfig
    adapters: tuple[str, ...]  # <method>:<adapter id>
    data_dir: str | None = None


@dataclass(frozen=True)
class PickPlan:
    run_id: str
    row: RunRow
    req: PickRequest
    refs: tuple[VariantRef, ...]
    shots: Dataset
    outputs: tuple = ()


@dataclass(frozen=True)
class PickOutcome:
    run_id: str
    picked: str  # the adapter's variant name (<method>:<id>)
    scores: dict
    reused: bool


class PickOp(OperationBase):
    name = "pick"

    def plan(self, req: PickRequest, ident: ModelIdent) -> PickPlan:
        if not req.adapters:
            raise ConfigError("no adapters to choose from; train LoRA baselines first (`t2 baseline --method lora`).")
        refs = tuple(sorted((describe_ref(ident.weights_hash, a) for a in req.adapters), key=lambda r: r.name))
        shots = pick_shots(req.cfg, req.data_dir)
        task = get_task(req.cfg.task)
        payload = ["lora-pick", ident.weights_hash, [r.name for r in refs], [s.id for s in shots.samples],
                   task.version, sorted(shots.files.values()), req.cfg.dtype, req.cfg.max_new_tokens]
        run_id = content_id(payload)
        row = RunRow(run_id=run_id, kind="select", model=ident.alias, weights_hash=ident.weights_hash,
                     task=task.name, task_version=task.version, split=req.cfg.split,
                     config={"adapters": [r.name for r in refs], "shots": [s.id for s in shots.samples]},
                     data_files=shots.files, seed=req.cfg.cem.seed, strategy="few-shot-pick")
        return PickPlan(run_id, row, req, refs, shots)

    def done(self, plan: PickPlan, recorded: Recorded) -> PickOutcome:
        return PickOutcome(plan.run_id, recorded.config["picked"], recorded.config["scores"], True)

    def run(self, plan: PickPlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[PickOutcome]:
        cfg = plan.req.cfg
        task, smp = get_task(cfg.task), make_sampler("hf", loaded=loaded)
        scores = {r.name: shot_score(task, plan.shots, smp, cfg.generation, resolve_variant(loaded, r, dtype=cfg.dtype))
                  for r in plan.refs}
        best = pick_best(scores)
        return Produced(PickOutcome(plan.run_id, best, scores, False), (PickRecord(plan.row, scores, best),))

    def footprint(self, req: PickRequest, ctx):
        """Each adapter evaluated on the search's shots (t2core/plan/)."""
        from t2core.evaluate import EvalConfig
        from t2core.plan.work import evaluation
        from t2core.sampling.base import GenerationConfig

        cfg = req.cfg
        gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, dtype=cfg.dtype)
        return evaluation(EvalConfig(cfg.task, cfg.split, cfg.shots, gen), ctx, passes=len(req.adapters))


OP = register_operation(PickOp())
