"""Training one expert by REINFORCE (paper §3.2): an SVF expert, or LoRA-PG (the same loop on LoRA)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from t2core.artifacts import ArtifactStore
from t2core.faults import fault_injection_point
from t2core.methods import Method, method_of
from t2core.models.registry import LoadedModel
from t2core.sampling import check_sampler, make_sampler
from t2core.sampling.base import run_backend
from t2core.tasks import get_task
from t2core.training.config import RLConfig
from t2core.training.experts import TrainedExpert, train_expert
from t2core.training.ntp import lora_identity, lora_pg_settings
from t2core.training.reinforce import plan_training
from t2core.variants import VariantRef
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import RunRow, TrainingRecord


@dataclass(frozen=True)
class TrainRequest:
    rl: RLConfig
    sampler: str = "hf"  # rollouts in-process (hf) or on another model copy fed the vectors (proc, vllm)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_sampler(self.sampler)


@dataclass(frozen=True)
class TrainPlan:
    run_id: str
    row: RunRow
    outputs: tuple[tuple[str, str], ...]
    req: TrainRequest
    method: Method
    planned: tuple  # plan_training's (train dataset, data files, run id): the data is loaded once


@dataclass(frozen=True)
class TrainOutcome:
    run_id: str
    expert_id: str  # svf:<hex> or lora-pg:<adapter id>: what `t2 eval --expert` takes
    path: Path
    reused: bool  # found completed in the catalog: nothing ran
    metrics: dict
    trained: TrainedExpert | None = None


def train_config(cfg, method: Method) -> dict:
    """What a training run's row records of its config: all of it, and for LoRA-PG the LoRA it trains."""
    out = asdict(cfg)
    if method.objective == "pg" and method.product != "svf":
        out["lora"] = lora_identity(lora_pg_settings(cfg.task, cfg.seed))
    return out


def train_row(ident: ModelIdent, cfg, method: Method, run_id: str, data_files: dict[str, str]) -> RunRow:
    """The run row of a training run (RLConfig or NTPConfig `cfg`) while it runs; its product, known by
    content once trained, is named in the row the record writes."""
    return RunRow(run_id=run_id, kind="train", model=ident.alias, weights_hash=ident.weights_hash, task=cfg.task,
                  task_version=get_task(cfg.task).version, split="train", config=train_config(cfg, method),
                  data_files=data_files, seed=cfg.seed, variant=VariantRef(method.product))


def trained_record(row: RunRow, method: Method, expert_id: str, path: Path, family, metrics: dict,
                   seconds: float | None = None, curve=()) -> TrainingRecord:
    return TrainingRecord(row=replace(row, variant=VariantRef.parse(expert_id)), expert_id=expert_id, path=str(path),
                          targets=method.targets(row.config, family), origin=method.name, metrics=metrics,
                          seconds=seconds, curve=tuple(curve))


class TrainOp(OperationBase):
    name = "train"

    def plan(self, req: TrainRequest, ident: ModelIdent) -> TrainPlan:
        """The training run id (weights, identity fields of the config, task version, data hashes)."""
        cfg = req.rl
        planned = plan_training(ident.weights_hash, cfg, req.data_dir, run_backend(req.sampler))
        method = method_of("pg", cfg.method)
        run_id = planned[2]
        return TrainPlan(run_id, train_row(ident, cfg, method, run_id, planned[1]), ((method.store, run_id),), req,
                         method, planned)

    def size(self, plan: TrainPlan) -> int:
        return plan.req.rl.steps

    def done(self, plan: TrainPlan, recorded: Recorded) -> TrainOutcome:
        eid, path = recorded.expert or (None, None)
        return TrainOutcome(plan.run_id, eid, Path(path) if path else None, True, recorded.metrics)

    def run(self, plan: TrainPlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[TrainOutcome]:
        req = plan.req
        stored = ArtifactStore().exists(plan.method.store, plan.run_id)  # its process died before the record
        smp = None if stored else make_sampler(req.sampler, loaded=loaded)
        out = train_expert(loaded, req.rl, req.data_dir, on_log=hooks.on_log, planned=plan.planned, sampler=smp)
        fault_injection_point("train-stored")  # resume tests: a kill -9 between the artifact and its record
        rec = out.record
        return Produced(TrainOutcome(plan.run_id, out.expert_id, out.path, False, rec["metrics"], out),
                        (trained_record(plan.row, plan.method, out.expert_id, out.path, loaded.family, rec["metrics"],
                                        rec["seconds"], rec["curve"]),))


OP = register_operation(TrainOp())
