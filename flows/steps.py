"""Prefect tasks: each wraps one recorded operation of `t2ops` (the same call the CLI makes).

Parameters are typed: the model's identity (`ModelIdent`) and the operation's request. A
cache key is the operation's plan (content: weights hash, task version, data file sha256s,
resolved config), computed from the identity without loading the model. Before a cached result
is trusted, the key function checks that the step's output still exists (the SVD artifact, the
completed catalog run); if someone deleted it, the persisted Prefect result for that key is
dropped, so the step runs again instead of returning a stale cached result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.context import TaskRunContext
from prefect.runtime import task_run

from catalog import Catalog
from catalog import records as rec
from flows.runtime import get_model
from t2core.adapters import KIND as ADAPTER_KIND
from t2core.artifacts import ArtifactStore
from t2core.experts import KIND as EXPERT_KIND
from t2core.experts import is_stored
from t2core.svd import KIND as SVD_KIND
from t2ops import adaptation, baseline, evaluation, svd, training, transfer
from t2ops.model import ModelIdent, ident_of

# The shape of the tasks' results: results persisted by older code (other keys, other expert ids) are not
# read back; their steps rerun once and find their outputs in the store and the catalog.
RESULTS_VERSION = "r2"


def _validated_key(key: str, output_present: bool) -> str:
    """`key`, after dropping its persisted result when the output it describes is gone."""
    key = f"{RESULTS_VERSION}-{key}"
    if not output_present:
        from prefect.settings import get_current_settings

        stale = Path(get_current_settings().results.local_storage_path).expanduser() / key
        stale.unlink(missing_ok=True)
    return key


def _name(prefix: str):
    """A task-run name from the request's task (and method), e.g. eval-gsm8k-test."""

    def name() -> str:
        req = task_run.parameters["req"]
        cfg = getattr(req, "eval", None) or getattr(req, "rl", None) or getattr(req, "ntp", None)
        bits = [prefix, getattr(cfg, "method", None) if prefix != "eval" else None, cfg.task,
                getattr(cfg, "split", None) if prefix == "eval" else None]
        return "-".join(b for b in bits if b)

    return name


@task(name="load-model", retries=0)
def load_model_step(model: str, seed: int = 0) -> ModelIdent:
    """Load (or convert) the model and register it; its identity keys every downstream step."""
    loaded = get_model(model, seed)
    rec.record_model(Catalog(), loaded)
    return ident_of(loaded, model)


def _svd_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    key = svd.plan(params["req"], params["ident"])
    return _validated_key(f"svd-{key}", ArtifactStore().exists(SVD_KIND, key))


@task(name="svd", cache_key_fn=_svd_key, persist_result=True)
def svd_step(ident: ModelIdent, req: svd.SvdRequest) -> dict[str, Any]:
    """SVD of the targeted matrices (reused when the artifact exists), recorded once in the catalog."""
    info, _ = svd.run(req, get_model(ident.name, ident.seed), Catalog())
    return {"key": info.key, "reused": info.reused, "seconds": info.seconds, "bytes": info.bytes,
            "max_error": info.max_error, "n_matrices": info.n_matrices}


def _train_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    req: training.TrainRequest = params["req"]
    run_id = training.plan(req, params["ident"].weights_hash)
    return _validated_key(f"train-{run_id}", is_stored(run_id, req.rl.method) and rec.is_completed(Catalog(), run_id))


@task(name="train-expert", cache_key_fn=_train_key, persist_result=True, task_run_name=_name("train"))
def train_step(ident: ModelIdent, req: training.TrainRequest) -> dict[str, Any]:
    """Train one SVF expert (or LoRA-PG) with REINFORCE, resumable from its checkpoint; into the catalog."""
    logger = get_run_logger()

    def log(p) -> None:
        logger.info("train %s step %d: reward %+.3f, train acc %.3f, kl %.4f%s", req.rl.task, p.step, p.mean_reward,
                    p.train_acc, p.kl, f", valid {p.valid_acc:.3f}" if p.valid_acc is not None else "")

    out = training.run(req, get_model(ident.name, ident.seed), Catalog(), on_log=log)
    return {"expert_id": out.expert_id, "path": str(out.path), "task": req.rl.task, "method": req.rl.method,
            "metrics": out.metrics, "reused": out.reused}


def _baseline_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    req: baseline.BaselineRequest = params["req"]
    aid = baseline.plan(req, params["ident"].weights_hash)
    return _validated_key(f"ntp-{aid}", ArtifactStore().exists(EXPERT_KIND if req.ntp.method == "svf" else ADAPTER_KIND, aid)
                          and rec.is_completed(Catalog(), f"{req.ntp.method}-{aid}"))


@task(name="train-baseline", cache_key_fn=_baseline_key, persist_result=True, task_run_name=_name("baseline"))
def baseline_step(ident: ModelIdent, req: baseline.BaselineRequest) -> dict[str, Any]:
    """Train a PEFT baseline (LoRA-NTP, IA3, DoRA) on reference solutions; adapter + run into the catalog."""
    logger = get_run_logger()
    cfg = req.ntp

    def log(step: int, loss: float) -> None:
        if step % 10 == 0 or step == cfg.steps:
            logger.info("baseline %s/%s step %d: loss %.4f", cfg.method, cfg.task, step, loss)

    res = baseline.run(req, get_model(ident.name, ident.seed), Catalog(), on_log=log)
    return {"expert_id": res.variant(cfg.method), "method": cfg.method, "task": cfg.task,
            "reused": res.reused, "final_loss": res.losses[-1] if res.losses else None}


def _eval_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    run_id = evaluation.plan(params["req"], params["ident"].weights_hash).run_id
    return _validated_key(f"eval-{run_id}", rec.is_completed(Catalog(), run_id))


@task(name="evaluate", cache_key_fn=_eval_key, persist_result=True, task_run_name=_name("eval"))
def eval_step(ident: ModelIdent, req: evaluation.EvalRequest) -> dict[str, Any]:
    """Evaluate the base model, or it with an SVF expert or a PEFT adapter, on one slice; rows go to the catalog."""
    out = evaluation.run(req, get_model(ident.name, ident.seed), Catalog())
    return {"run_id": out.run_id, "task": req.eval.task, "variant": out.variant, "accuracy": out.accuracy,
            "n": out.n, "reused": out.reused}


def _few_shot_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    run_id = adaptation.plan_few_shot(params["req"], params["ident"].weights_hash).run_id
    return _validated_key(f"few-shot-{run_id}", rec.is_completed(Catalog(), run_id))


@task(name="few-shot", cache_key_fn=_few_shot_key, persist_result=True,
      task_run_name=lambda: f"few-shot-{task_run.parameters['req'].cfg.task}")
def few_shot_step(ident: ModelIdent, req: adaptation.FewShotRequest) -> dict[str, Any]:
    """CEM over the experts' mixing weights on shots of an unseen task (resumes from its last generation)."""
    logger = get_run_logger()

    def log(st) -> None:
        logger.info("CEM generation %d: best accuracy %.3f", st.generation, st.best_fitness[0])

    res = adaptation.run_few_shot(req, get_model(ident.name, ident.seed), Catalog(), on_generation=log)
    return {"run_id": res.run_id, "expert_id": res.expert.id, "alpha": res.alpha.tolist(),
            "generations": res.state.generation, "reused": res.reused}


def _adapt_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    run_id = adaptation.plan(params["req"], params["ident"].weights_hash).run_id
    return _validated_key(f"adapt-{run_id}", rec.is_completed(Catalog(), run_id))


@task(name="adapt", cache_key_fn=_adapt_key, persist_result=True,
      task_run_name=lambda: "adapt-{0.strategy}-{0.eval.task}".format(task_run.parameters["req"]))
def adapt_step(ident: ModelIdent, req: adaptation.AdaptRequest) -> dict[str, Any]:
    """Two-pass evaluation of one unseen-task slice with one strategy (paper §3.3)."""
    out = adaptation.run(req, get_model(ident.name, ident.seed), Catalog())
    return {"run_id": out.run_id, "task": req.eval.task, "strategy": req.strategy, "accuracy": out.accuracy,
            "n": out.n, "reused": out.reused}


def _pick_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    run_id = adaptation.plan_pick(params["req"], params["ident"].weights_hash)[0]
    return _validated_key(f"pick-{run_id}", rec.is_completed(Catalog(), run_id))


@task(name="lora-pick", cache_key_fn=_pick_key, persist_result=True,
      task_run_name=lambda: f"lora-pick-{task_run.parameters['req'].cfg.task}")
def pick_step(ident: ModelIdent, req: adaptation.PickRequest) -> dict[str, Any]:
    """Choose one of the LoRAs by its score on the unseen task's few-shot prompts (no test data)."""
    out = adaptation.run_pick(req, get_model(ident.name, ident.seed), Catalog())
    return {"run_id": out.run_id, "expert_id": out.picked, "accuracy": out.scores[out.picked][0],
            "reused": out.reused}


def _transfer_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    run_id, _ = transfer.plan(params["req"], params["ident"])
    return _validated_key(f"transfer-{run_id}", rec.is_completed(Catalog(), run_id))


@task(name="transfer", cache_key_fn=_transfer_key, persist_result=True,
      task_run_name=lambda: f"transfer-{task_run.parameters['req'].control}")
def transfer_step(ident: ModelIdent, req: transfer.TransferRequest) -> dict[str, Any]:
    """Move one source expert to the destination model `ident` (paper §4.4), with a control."""
    out = transfer.run(req, get_model(ident.name, ident.seed), Catalog(), ident)
    return {"run_id": out.run_id, "expert_id": out.expert_id, "source": out.source, "task": out.task,
            "control": out.control, "mapping": out.mapping, "reused": out.reused}
