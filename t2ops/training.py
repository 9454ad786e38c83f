"""Training one expert by REINFORCE (paper §3.2): an SVF expert, or LoRA-PG (the same loop on LoRA)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from catalog import Catalog
from catalog import records as rec
from t2core.experts import is_stored
from t2core.faults import fault_injection_point
from t2core.models.registry import LoadedModel
from t2core.sampling import check_sampler, make_sampler
from t2core.sampling.base import run_backend
from t2core.training.config import RLConfig
from t2core.training.experts import TrainedExpert, train_expert
from t2core.training.reinforce import CurvePoint, plan_training
from t2core.variants import VariantRef
from t2ops.lifecycle import recorded


@dataclass(frozen=True)
class TrainRequest:
    rl: RLConfig
    sampler: str = "hf"  # rollouts in-process (hf) or on another model copy fed the vectors (proc, vllm)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_sampler(self.sampler)


def plan(req: TrainRequest, weights_hash: str) -> str:
    """The training run id (weights, identity fields of the config, task version, data hashes)."""
    return plan_training(weights_hash, req.rl, req.data_dir, run_backend(req.sampler))[2]


@dataclass(frozen=True)
class TrainOutcome:
    run_id: str
    expert_id: str  # svf:<hex> or lora-pg:<adapter id>: what `t2 eval --expert` takes
    path: Path
    reused: bool
    metrics: dict
    trained: TrainedExpert | None = None


def run(req: TrainRequest, loaded: LoadedModel, cat: Catalog,
        on_log: Callable[[CurvePoint], None] | None = None) -> TrainOutcome:
    cfg = req.rl
    planned = plan_training(loaded.weights_hash, cfg, req.data_dir, run_backend(req.sampler))
    run_id = planned[2]
    rec.record_model(cat, loaded)
    row = rec.train_row(loaded, cfg, run_id, planned[1], cfg.seed)

    def record(out: TrainedExpert) -> None:
        rec.record_training(cat, row=replace(row, variant=VariantRef.parse(out.expert_id)), record=out.record,
                            expert_path=str(out.path))

    if is_stored(run_id, cfg.method):  # reuse: nothing trains (the stored artifact is verified)
        out = train_expert(loaded, cfg, req.data_dir, planned=planned)
        if not rec.is_completed(cat, run_id):  # its process died between the artifact and the record
            record(out)
        return TrainOutcome(run_id, out.expert_id, out.path, True, _metrics(cat, run_id), out)

    def body() -> TrainedExpert:
        out = train_expert(loaded, cfg, req.data_dir, on_log=on_log, planned=planned,
                           sampler=make_sampler(req.sampler, loaded=loaded))
        fault_injection_point("train-stored")  # resume tests: a kill -9 between the artifact and its record
        return out

    out = recorded(cat, row, body, record)
    return TrainOutcome(run_id, out.expert_id, out.path, False, _metrics(cat, run_id), out)


def _metrics(cat: Catalog, run_id: str) -> dict:
    _, rows = cat.query("SELECT name, value FROM metrics WHERE run_id = ?", [run_id])
    return dict(rows)
