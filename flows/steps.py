"""Prefect tasks wrapping t2core steps, cached by content-hash manifests.

A cache key is derived from content (weights hash, target spec, eval config, task
version, data file sha256s), never from paths. Before a cached result is trusted, the
key function checks that the step's output still exists (the SVD artifact's manifest,
the completed catalog run); if someone deleted it, the persisted Prefect result for that
key is dropped, so the step runs again instead of returning a stale cached result.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from catalog import Catalog
from catalog import records as rec
from flows.runtime import get_model
from t2core.artifacts import ArtifactStore
from t2core.evaluate import EvalConfig, evaluate, plan_eval
from t2core.hashing import config_hash
from t2core.models.targets import find_targets
from t2core.paths import resolve_data_dir
from t2core.sampling import GenerationConfig
from t2core.svd import KIND as SVD_KIND
from t2core.svd import decomposition_key, ensure_svd


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


def eval_config(task_name: str, split: str, limit: int | None, gen: dict[str, Any]) -> EvalConfig:
    return EvalConfig(task=task_name, split=split, limit=limit, generation=GenerationConfig(**gen))


def _eval_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    ident = params["ident"]
    cfg = eval_config(params["task_name"], params["split"], params["limit"], params["gen"])
    loaded = get_model(ident["model"], ident["seed"])
    _, _, run_id = plan_eval(loaded, cfg, params.get("data_dir"))
    return _validated_key(f"eval-{run_id}", rec.is_completed(Catalog(), run_id))


@task(name="evaluate", cache_key_fn=_eval_key, persist_result=True,
      task_run_name="eval-{task_name}-{split}")
def eval_step(ident: dict[str, Any], task_name: str, split: str, limit: int | None, gen: dict[str, Any],
              data_dir: str | None = None) -> dict[str, Any]:
    """Evaluate the base model on one slice; per-sample rows and metrics go to the catalog."""
    loaded = get_model(ident["model"], ident["seed"])
    cfg = eval_config(task_name, split, limit, gen)
    planned = plan_eval(loaded, cfg, data_dir)
    task_obj, ds, run_id = planned
    cat = Catalog()
    if rec.is_completed(cat, run_id):  # finished in an earlier process whose Prefect cache is gone
        _, rows = cat.query("SELECT value FROM metrics WHERE run_id = ? AND name = 'accuracy'", [run_id])
        return {"run_id": run_id, "task": task_name, "accuracy": rows[0][0] if rows else None, "skipped": True}
    rec.start_run(cat, run_id=run_id, kind="eval", model=loaded.alias, weights_hash=loaded.weights_hash,
                  task=task_name, task_version=task_obj.version, split=split, config=asdict(cfg),
                  config_hash=config_hash(asdict(cfg)), data_files=ds.files, seed=cfg.generation.seed)
    try:
        res = evaluate(loaded, cfg, data_dir, planned=planned)
    except Exception as e:
        rec.fail_run(cat, run_id, f"{type(e).__name__}: {e}")
        raise
    rec.record_eval(cat, res, n_records=ds.n_total)
    return {"run_id": run_id, "task": task_name, "accuracy": res.accuracy, "n": len(res.samples), "skipped": False}


def data_dir_str(data_dir: str | None) -> str | None:
    d = resolve_data_dir(data_dir)
    return str(d) if d else None
