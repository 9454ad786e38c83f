"""Prefect tasks wrapping t2core steps, cached by content-hash manifests.

A cache key is derived from content (weights hash, target spec, eval config, task
version, data file sha256s), never from paths. Before a cached result is trusted, the
key function checks that the step's output still exists (the SVD artifact's manifest,
the completed catalog run); if someone deleted it, the persisted Prefect result for that
key is dropped, so the step runs again instead of returning a stale cached result.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.context import TaskRunContext

from catalog import Catalog
from catalog import records as rec
from flows.runtime import get_model
from t2core.artifacts import ArtifactStore
from t2core.baselines.peft_ntp import KIND as ADAPTER_KIND
from t2core.baselines.peft_ntp import NTPConfig, plan_ntp, train_ntp
from t2core.evaluate import EvalConfig, evaluate, plan_eval
from t2core.experts import is_stored, train_expert
from t2core.hashing import config_hash
from t2core.models.targets import find_targets
from t2core.paths import resolve_data_dir
from t2core.rl import RLConfig, plan_training
from t2core.sampling import GenerationConfig
from t2core.svd import KIND as SVD_KIND
from t2core.svd import decomposition_key, ensure_svd
from t2core.svf import SVFConfig
from t2core.variants import Variant, resolve_variant


def _validated_key(key: str, output_present: bool) -> str:
    """`key`, after dropping its persisted result when the output it describes is gone."""
    if not output_present:
        from prefect.settings import get_current_settings

        stale = Path(get_current_settings().results.local_storage_path).expanduser() / key
        stale.unlink(missing_ok=True)
    return key


@task(name="load-model", retries=0)
def load_model_step(model: str, seed: int = 0) -> dict[str, Any]:
    """Load (or convert) the model and register it; returns its identity for downstream cache keys."""
    loaded = get_model(model, seed)
    rec.record_model(Catalog(), loaded)
    return {"model": model, "weights_hash": loaded.weights_hash, "n_params": loaded.n_params, "seed": seed}


def _svd_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    ident, targets = params["ident"], params["targets"]
    loaded = get_model(ident["model"], ident["seed"])
    key = decomposition_key(ident["weights_hash"], targets, list(find_targets(loaded.model, loaded.family, targets)))
    return _validated_key(f"svd-{key}", ArtifactStore().exists(SVD_KIND, key))


@task(name="svd", cache_key_fn=_svd_key, persist_result=True)
def svd_step(ident: dict[str, Any], targets: str = "mlp") -> dict[str, Any]:
    """SVD of the targeted matrices (reused when the artifact exists), recorded once in the catalog."""
    loaded = get_model(ident["model"], ident["seed"])
    info = ensure_svd(loaded, targets)
    cat = Catalog()
    rec.record_decomposition(cat, info)
    rec.record_svd_run(cat, loaded, info, seed=ident["seed"])
    return {"key": info.key, "reused": info.reused, "seconds": info.seconds, "bytes": info.bytes,
            "max_error": info.max_error, "n_matrices": info.n_matrices}


def rl_config(task_name: str, overrides: dict[str, Any], targets: str, seed: int) -> RLConfig:
    return RLConfig(task=task_name, seed=seed, svf=SVFConfig(targets=targets), **overrides)


def _train_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    ident = params["ident"]
    loaded = get_model(ident["model"], ident["seed"])
    cfg = rl_config(params["task_name"], params["overrides"], params["targets"], ident["seed"])
    run_id = plan_training(loaded, cfg, params.get("data_dir"))[2]
    return _validated_key(f"train-{run_id}", is_stored(run_id, cfg.method) and rec.is_completed(Catalog(), run_id))


@task(name="train-expert", cache_key_fn=_train_key, persist_result=True, task_run_name="train-{task_name}")
def train_step(ident: dict[str, Any], task_name: str, overrides: dict[str, Any], targets: str = "mlp",
               data_dir: str | None = None) -> dict[str, Any]:
    """Train one SVF expert with REINFORCE (resumable from its checkpoint); expert + curve into the catalog."""
    loaded = get_model(ident["model"], ident["seed"])
    cfg = rl_config(task_name, overrides, targets, ident["seed"])
    logger = get_run_logger()

    def log(p) -> None:
        logger.info("train %s step %d: reward %+.3f, train acc %.3f, kl %.4f%s", task_name, p.step, p.mean_reward,
                    p.train_acc, p.kl, f", valid {p.valid_acc:.3f}" if p.valid_acc is not None else "")

    cat = Catalog()

    def started(run_id: str, data_files: dict[str, str]) -> None:  # `running` (or interrupted) until it finishes
        rec.start_training(cat, loaded=loaded, cfg=cfg, run_id=run_id, data_files=data_files, seed=ident["seed"])

    out = train_expert(loaded, cfg, data_dir, on_log=log, on_start=started)
    if out.result is not None:
        rec.record_training(cat, res=out.result, loaded=loaded, cfg=cfg, expert_id=out.expert_id,
                            expert_path=str(out.path), seconds=out.seconds, seed=ident["seed"])
    _, rows = cat.query("SELECT metrics_json FROM experts WHERE expert_id = ?", [out.expert_id])
    return {"expert_id": out.expert_id, "path": str(out.path), "task": task_name, "method": cfg.method,
            "adapter": out.path.name if cfg.method != "svf" else None,  # LoRA-PG: a PEFT adapter directory
            "metrics": json.loads(rows[0][0]) if rows else {}, "reused": out.result is None}


def ntp_config(task_name: str, method: str, overrides: dict[str, Any], seed: int) -> NTPConfig:
    return NTPConfig(task=task_name, method=method, seed=seed, **overrides)


def _baseline_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    ident = params["ident"]
    loaded = get_model(ident["model"], ident["seed"])
    cfg = ntp_config(params["task_name"], params["method"], params["overrides"], ident["seed"])
    aid = plan_ntp(loaded, cfg, params.get("data_dir"))[1]
    return _validated_key(f"ntp-{aid}", ArtifactStore().exists(ADAPTER_KIND, aid)
                          and rec.is_completed(Catalog(), f"{cfg.method}-{aid}"))


@task(name="train-baseline", cache_key_fn=_baseline_key, persist_result=True,
      task_run_name="baseline-{method}-{task_name}")
def baseline_step(ident: dict[str, Any], task_name: str, method: str, overrides: dict[str, Any],
                  data_dir: str | None = None) -> dict[str, Any]:
    """Train a PEFT baseline (LoRA-NTP, IA3, DoRA) on reference solutions; adapter + run into the catalog."""
    loaded = get_model(ident["model"], ident["seed"])
    cfg = ntp_config(task_name, method, overrides, ident["seed"])
    logger = get_run_logger()

    def log(step: int, loss: float) -> None:
        if step % 10 == 0 or step == cfg.steps:
            logger.info("baseline %s/%s step %d: loss %.4f", method, task_name, step, loss)

    res = train_ntp(loaded, cfg, data_dir, on_log=log)
    rec.record_adapter(Catalog(), loaded=loaded, cfg=cfg, res=res, seed=ident["seed"])
    return {"adapter": res.adapter_id, "method": method, "task": task_name, "reused": res.reused,
            "final_loss": res.losses[-1] if res.losses else None}


def eval_config(task_name: str, split: str, limit: int | None, gen: dict[str, Any]) -> EvalConfig:
    return EvalConfig(task=task_name, split=split, limit=limit, generation=GenerationConfig(**gen))


def _variant(loaded, gen: dict[str, Any], expert: str | None, adapter: str | None) -> Variant:
    return resolve_variant(loaded, expert=expert, adapter=adapter, dtype=gen.get("dtype", "float32"))


def _eval_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    ident = params["ident"]
    cfg = eval_config(params["task_name"], params["split"], params["limit"], params["gen"])
    loaded = get_model(ident["model"], ident["seed"])
    run_id = plan_eval(loaded, cfg, params.get("data_dir"),
                       _variant(loaded, params["gen"], params.get("expert"), params.get("adapter")).name).run_id
    return _validated_key(f"eval-{run_id}", rec.is_completed(Catalog(), run_id))


@task(name="evaluate", cache_key_fn=_eval_key, persist_result=True,
      task_run_name="eval-{task_name}-{split}")
def eval_step(ident: dict[str, Any], task_name: str, split: str, limit: int | None, gen: dict[str, Any],
              data_dir: str | None = None, expert: str | None = None, adapter: str | None = None) -> dict[str, Any]:
    """Evaluate the base model, or it with an SVF expert or a PEFT adapter, on one slice; rows go to the catalog."""
    loaded = get_model(ident["model"], ident["seed"])
    cfg = eval_config(task_name, split, limit, gen)
    var = _variant(loaded, gen, expert, adapter)
    variant = var.name
    planned = plan_eval(loaded, cfg, data_dir, variant)
    task_obj, ds, run_id, cfg = planned
    cat = Catalog()
    if rec.is_completed(cat, run_id):  # finished in an earlier process whose Prefect cache is gone
        _, rows = cat.query("SELECT value FROM metrics WHERE run_id = ? AND name = 'accuracy'", [run_id])
        return {"run_id": run_id, "task": task_name, "variant": variant, "accuracy": rows[0][0] if rows else None,
                "skipped": True}
    rec.start_run(cat, run_id=run_id, kind="eval", model=loaded.alias, weights_hash=loaded.weights_hash,
                  task=task_name, task_version=task_obj.version, split=split, config=asdict(cfg),
                  config_hash=config_hash(asdict(cfg)), data_files=ds.files, seed=cfg.generation.seed,
                  variant=variant)
    try:
        res = evaluate(loaded, cfg, data_dir, planned=planned, variant=variant, weights=var.weights)
    except Exception as e:
        rec.fail_run(cat, run_id, f"{type(e).__name__}: {e}")
        raise
    rec.record_eval(cat, res, n_records=ds.n_total)
    return {"run_id": run_id, "task": task_name, "variant": variant, "accuracy": res.accuracy, "n": len(res.samples),
            "skipped": False}


def data_dir_str(data_dir: str | None) -> str | None:
    d = resolve_data_dir(data_dir)
    return str(d) if d else None
