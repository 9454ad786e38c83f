"""Train an SVF expert (or a LoRA-PG adapter) end to end by REINFORCE and store it (paper §3.2).

SVD (cached) → REINFORCE (resumable from its checkpoints) → expert file (atomic, verified). The
stored expert is found again by its training run id; users see its content id (`t2core/experts.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from t2core.adapters import KIND as ADAPTERS
from t2core.adapters import peft_module, with_adapter
from t2core.artifacts import ArtifactStore
from t2core.experts import KIND, run_expert, store_expert
from t2core.methods import method_of
from t2core.models.registry import LoadedModel
from t2core.paths import t2_home
from t2core.sampling.base import run_backend
from t2core.svf import ExpertHeader
from t2core.svf.placement import resident_svd
from t2core.training.config import RLConfig
from t2core.training.ntp import lora_pg_settings
from t2core.training.reinforce import CurvePoint, ReinforceTrainer, TrainResult, plan_training


@dataclass
class TrainedExpert:
    expert_id: str
    path: Path
    result: TrainResult | None  # None when the stored expert was reused
    seconds: float
    record: dict  # `training_record`: what the catalog records of the training, kept with the artifact


def training_record(res: TrainResult, seconds: float) -> dict:
    """What the catalog records of a finished REINFORCE run, as plain data: the metrics, the learning
    curve and the time. It is stored in the artifact's manifest with the expert, so that a run whose
    process died between the write and the catalog record is recorded whole by its rerun."""
    return {"metrics": {"base_valid": res.base_valid, "best_valid": res.best_valid, "best_step": float(res.best_step),
                        "steps": float(len(res.curve)),
                        "final_mean_reward": res.curve[-1].mean_reward if res.curve else 0.0,
                        "n_params": float(sum(t.numel() for t in res.best_state.values()))},  # Table 4's #params
            "curve": [asdict(c) for c in res.curve], "seconds": seconds}


def _stored_record(store: ArtifactStore, kind: str, run_id: str, header_metrics: dict | None = None) -> dict:
    """The record kept with a stored artifact (artifacts written before it was kept: the header's metrics)."""
    kept = store.manifest(kind, run_id).meta.get("record")
    if kept is not None:
        return kept
    return {"metrics": {k: float(v) for k, v in (header_metrics or {}).items()}, "curve": [], "seconds": 0.0}


def train_expert(loaded: LoadedModel, cfg: RLConfig, data_dir: str | Path | None = None,
                 store: ArtifactStore | None = None, on_log: Callable[[CurvePoint], None] | None = None,
                 sampler=None, planned=None) -> TrainedExpert:
    """SVD (cached) → REINFORCE (resumable) → expert file (atomic). Reuses a stored expert.

    `planned`: `plan_training`'s result when the caller has it (the data is loaded once)."""
    store = store or ArtifactStore()
    planned = planned or plan_training(loaded.weights_hash, cfg, data_dir, run_backend(sampler))
    run_id = planned[2]
    if method_of("pg", cfg.method).product != "svf":
        return _train_peft_pg(loaded, planned, cfg, data_dir, store, sampler, on_log)
    if store.exists(KIND, run_id):  # reuse: no trainer, no SVD load
        ref = run_expert(store, run_id)
        return TrainedExpert(ref.id, ref.path, None, 0.0, _stored_record(store, KIND, run_id, ref.header.metrics))
    svd = resident_svd(loaded, cfg.svf.targets, store=store)  # on the model's devices, once per model load
    trainer = _trainer(loaded, svd, cfg, data_dir, sampler, on_log, planned)
    t0 = time.perf_counter()
    res = trainer.fit()
    seconds = time.perf_counter() - t0
    header = ExpertHeader(
        base_weights_hash=loaded.weights_hash, model=loaded.alias, task=cfg.task, svf=asdict(cfg.svf),
        ranks={n: int(svd[n][1].shape[0]) for n in svd}, data_files=res.data_files, config=asdict(cfg),
        metrics={"base_valid": res.base_valid, "best_valid": res.best_valid, "best_step": res.best_step},
        origin="svf-pg")

    record = training_record(res, seconds)
    ref = store_expert(store, trainer.run_id, res.policy, header,
                       meta={"weights_hash": loaded.weights_hash, "record": record, "task": cfg.task})
    return TrainedExpert(ref.id, ref.path, res, seconds, record)


def _trainer(loaded, svd, cfg, data_dir, sampler, on_log, planned) -> ReinforceTrainer:
    trainer = ReinforceTrainer(loaded, svd, cfg, data_dir, sampler=sampler, on_log=on_log, planned=planned)
    trainer.checkpoint_dir = t2_home() / "checkpoints" / cfg.method / trainer.run_id  # keyed by run id: resumable
    return trainer


def _train_peft_pg(loaded: LoadedModel, planned, cfg: RLConfig, data_dir, store: ArtifactStore, sampler,
                   on_log) -> TrainedExpert:
    """LoRA-PG: the same REINFORCE loop on a PEFT LoRA; saved in PEFT format under `adapters/`."""
    aid, product = planned[2], method_of("pg", cfg.method).product
    if store.exists(ADAPTERS, aid):
        store.verify(ADAPTERS, aid)
        return TrainedExpert(f"{product}:{aid}", store.path(ADAPTERS, aid), None, 0.0,
                             _stored_record(store, ADAPTERS, aid))
    trainer = _trainer(loaded, None, cfg, data_dir, sampler, on_log, planned)  # LoRA needs no SVD
    t0 = time.perf_counter()
    res = trainer.fit()
    seconds = time.perf_counter() - t0
    with with_adapter(loaded, cfg=lora_pg_settings(cfg.task, cfg.seed)) as lm:
        peft_module().set_peft_model_state_dict(lm.model, res.best_state)

        def write(tmp: Path) -> dict:
            lm.model.save_pretrained(str(tmp))
            return {"method": product, "task": cfg.task}

        record = training_record(res, seconds)
        store.write(ADAPTERS, aid, write, meta={"weights_hash": loaded.weights_hash, "config": asdict(cfg),
                                                "record": record})
    return TrainedExpert(f"{product}:{aid}", store.path(ADAPTERS, aid), res, seconds, record)
