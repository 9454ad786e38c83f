"""Training one expert by REINFORCE (paper §3.2): an SVF expert, or LoRA-PG (the same loop on LoRA).

With a `kl_grid` the run trains one expert per λ and keeps the one that validates best (paper A.1,
`t2core/training/kl_grid.py`); its record names the grid, each λ's validation accuracy and the chosen λ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from t2core.artifacts import ArtifactStore
from t2core.experts import run_expert
from t2core.faults import fault_injection_point
from t2core.methods import Method, method_of
from t2core.models.registry import LoadedModel
from t2core.sampling import check_exact_sampler, make_sampler
from t2core.sampling.base import run_backend
from t2core.tasks import get_task
from t2core.training.config import RLConfig
from t2core.training.experts import TrainedExpert, train_expert
from t2core.training.kl_grid import check_kl_grid, choose, grid_configs, grid_metrics, grid_run_id
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
    kl_grid: tuple[float, ...] = ()  # λ chosen on validation among these (rl.kl_coef unused); (): rl.kl_coef

    def __post_init__(self) -> None:
        check_exact_sampler(self.sampler, "training")
        object.__setattr__(self, "kl_grid", check_kl_grid(self.kl_grid))

    def members(self) -> list[RLConfig]:
        """The configs this request trains: one per λ of the grid, or `rl` alone."""
        return grid_configs(self.rl, self.kl_grid) if self.kl_grid else [self.rl]


@dataclass(frozen=True)
class TrainPlan:
    run_id: str
    row: RunRow
    outputs: tuple[tuple[str, str], ...]
    req: TrainRequest
    method: Method
    planned: tuple  # plan_training's (train dataset, data files, run id): the data is loaded once
    members: tuple[tuple[RLConfig, tuple], ...] = ()  # a kl_grid's (config, planned) per λ


@dataclass(frozen=True)
class TrainOutcome:
    run_id: str
    expert_id: str  # svf:<hex> or lora-pg:<adapter id>: what `t2 eval --expert` takes
    path: Path
    reused: bool  # found completed in the catalog: nothing ran
    metrics: dict
    trained: TrainedExpert | None = None


def train_config(cfg, method: Method, kl_grid: tuple[float, ...] = ()) -> dict:
    """What a training run's row records of its config: all of it, for LoRA-PG the LoRA it trains, and the
    λ grid when λ is chosen on validation."""
    out = asdict(cfg)
    if method.objective == "pg" and method.product != "svf":
        out["lora"] = lora_identity(lora_pg_settings(cfg.task, cfg.seed))
    if kl_grid:
        out["kl_grid"], out["kl_coef"] = list(kl_grid), None
    return out


def train_row(ident: ModelIdent, cfg, method: Method, run_id: str, data_files: dict[str, str],
              kl_grid: tuple[float, ...] = ()) -> RunRow:
    """The run row of a training run (RLConfig or NTPConfig `cfg`) while it runs; its product, known by
    content once trained, is named in the row the record writes."""
    return RunRow(run_id=run_id, kind="train", model=ident.alias, weights_hash=ident.weights_hash, task=cfg.task,
                  task_version=get_task(cfg.task).version, split="train",
                  config=train_config(cfg, method, kl_grid),
                  data_files=data_files, seed=cfg.seed, variant=VariantRef(method.product))


def trained_record(row: RunRow, method: Method, expert_id: str, path: Path, family, metrics: dict,
                   seconds: float | None = None, curve=()) -> TrainingRecord:
    return TrainingRecord(row=replace(row, variant=VariantRef.parse(expert_id)), expert_id=expert_id, path=str(path),
                          targets=method.targets(row.config, family), origin=method.name, metrics=metrics,
                          seconds=seconds, curve=tuple(curve))


class TrainOp(OperationBase):
    name = "train"

    def plan(self, req: TrainRequest, ident: ModelIdent) -> TrainPlan:
        """The training run id (weights, identity fields of the config, task version, data hashes); a
        kl_grid's: its members' ids, each stored under its own."""
        cfg = req.rl
        method = method_of("pg", cfg.method)
        members = tuple((m, plan_training(ident.weights_hash, m, req.data_dir, run_backend(req.sampler)))
                        for m in req.members())
        planned = members[0][1]
        run_id = grid_run_id([p[2] for _, p in members]) if req.kl_grid else planned[2]
        outputs = tuple((method.store, p[2]) for _, p in members)
        return TrainPlan(run_id, train_row(ident, cfg, method, run_id, planned[1], req.kl_grid), outputs, req,
                         method, planned, members if req.kl_grid else ())

    def size(self, plan: TrainPlan) -> int:
        return plan.req.rl.steps * len(plan.req.members())

    def done(self, plan: TrainPlan, recorded: Recorded) -> TrainOutcome:
        eid, path = recorded.expert or self._chosen(plan, recorded.metrics)
        return TrainOutcome(plan.run_id, eid, Path(path) if path else None, True, recorded.metrics)

    def run(self, plan: TrainPlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[TrainOutcome]:
        req = plan.req
        if plan.members:
            return self._run_grid(plan, loaded, hooks)
        out = self._train(plan, req.rl, plan.planned, loaded, hooks)
        fault_injection_point("train-stored")  # resume tests: a kill -9 between the artifact and its record
        rec = out.record
        return Produced(TrainOutcome(plan.run_id, out.expert_id, out.path, False, rec["metrics"], out),
                        (trained_record(plan.row, plan.method, out.expert_id, out.path, loaded.family, rec["metrics"],
                                        rec["seconds"], rec["curve"]),))

    @staticmethod
    def _chosen(plan: TrainPlan, metrics: dict) -> tuple[str | None, str | None]:
        """A recorded grid's expert found by content, from its chosen λ, when the catalog's experts table names
        another run for it (the same λ trained alone since then records the same expert under its own run)."""
        if not plan.members or "kl_chosen" not in metrics:
            return None, None
        run_id = plan.members[plan.req.kl_grid.index(metrics["kl_chosen"])][1][2]
        store = ArtifactStore()
        if plan.method.product == "svf":
            ref = run_expert(store, run_id)
            return ref.id, str(ref.path)
        return f"{plan.method.product}:{run_id}", str(store.path(plan.method.store, run_id))

    @staticmethod
    def _train(plan: TrainPlan, cfg: RLConfig, planned: tuple, loaded: LoadedModel, hooks: Hooks) -> TrainedExpert:
        req = plan.req
        stored = ArtifactStore().exists(plan.method.store, planned[2])  # its process died before the record
        smp = None if stored else make_sampler(req.sampler, loaded=loaded)
        return train_expert(loaded, cfg, req.data_dir, on_log=hooks.on_log, planned=planned, sampler=smp)

    def _run_grid(self, plan: TrainPlan, loaded: LoadedModel, hooks: Hooks) -> Produced[TrainOutcome]:
        """Every λ's expert (each reused when stored), then the one that validated best."""
        outs = [self._train(plan, cfg, planned, loaded, hooks) for cfg, planned in plan.members]
        fault_injection_point("train-stored")
        grid = plan.req.kl_grid
        valids = [o.record["metrics"]["best_valid"] for o in outs]
        i = choose(grid, valids)
        out, rec = outs[i], outs[i].record
        metrics = {**rec["metrics"], **grid_metrics(grid, valids, i)}
        seconds = sum(o.record["seconds"] for o in outs)
        return Produced(TrainOutcome(plan.run_id, out.expert_id, out.path, False, metrics, out),
                        (trained_record(plan.row, plan.method, out.expert_id, out.path, loaded.family, metrics,
                                        seconds, rec["curve"]),))

    def footprint(self, req: TrainRequest, ctx):
        """REINFORCE's peak: its rollouts or one micro-batch's graph, and its validations (t2core/plan/)."""
        from t2core.plan.work import rl_training

        return rl_training(req.rl, ctx, remote=req.sampler != "hf", kl_grid=req.kl_grid)


OP = register_operation(TrainOp())
