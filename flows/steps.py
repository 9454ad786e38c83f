"""Prefect tasks: each executes one recorded operation of `t2ops` through `catalog.execute`, the
same call the CLI makes.

Parameters are typed: the model's identity (`ModelIdent`) and the operation's request. A cache key
is the operation's plan (its run id: weights hash, task version, data file sha256s, resolved
config), computed from the identity without loading the model. Before a cached result is trusted,
the key asks the executor's `is_done` (the run completed in the catalog, its artifacts in the
store); if not, the persisted Prefect result for that key is dropped, so the step runs again
instead of returning a stale result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.context import TaskRunContext
from prefect.runtime import task_run

from catalog import Catalog
from catalog.execute import execute, is_done, model_record
from catalog.records import write_records
from flows.runtime import get_model
from t2ops import adaptation, baseline, evaluation, fewshot, pick, svd, training, transfer
from t2ops.model import ModelIdent, ident_of
from t2ops.operation import Hooks, Operation

# The shape of the tasks' results: results persisted by older code (other keys, other expert ids) are not
# read back; their steps rerun once and find their outputs in the store and the catalog.
RESULTS_VERSION = "r3"


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


def _key(op: Operation):
    """The cache key of `op`'s task: its plan's run id, the persisted result dropped unless the run is done."""

    def key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
        plan = op.plan(params["req"], params["ident"])
        return _validated_key(f"{op.name}-{plan.run_id}", is_done(Catalog(), plan))

    return key


def _execute(op: Operation, ident: ModelIdent, req, hooks: Hooks | None = None):
    """The same call the CLI makes: `catalog.execute` of the request on the flow's model."""
    return execute(op, req, get_model(ident.name, ident.seed), Catalog(), hooks=hooks, ident=ident)


@task(name="load-model", retries=0)
def load_model_step(model: str, seed: int = 0) -> ModelIdent:
    """Load (or convert) the model and register it; its identity keys every downstream step."""
    loaded = get_model(model, seed)
    write_records(Catalog(), [model_record(loaded)])
    return ident_of(loaded, model)


@task(name="svd", cache_key_fn=_key(svd.OP), persist_result=True)
def svd_step(ident: ModelIdent, req: svd.SvdRequest) -> dict[str, Any]:
    """SVD of the targeted matrices (reused when the artifact exists), recorded once in the catalog."""
    info = _execute(svd.OP, ident, req).info
    return {"key": info.key, "reused": info.reused, "seconds": info.seconds, "bytes": info.bytes,
            "max_error": info.max_error, "n_matrices": info.n_matrices}


@task(name="train-expert", cache_key_fn=_key(training.OP), persist_result=True, task_run_name=_name("train"))
def train_step(ident: ModelIdent, req: training.TrainRequest) -> dict[str, Any]:
    """Train one SVF expert (or LoRA-PG) with REINFORCE, resumable from its checkpoint; into the catalog."""
    logger = get_run_logger()

    def log(p) -> None:
        logger.info("train %s step %d: reward %+.3f, train acc %.3f, kl %.4f%s", req.rl.task, p.step, p.mean_reward,
                    p.train_acc, p.kl, f", valid {p.valid_acc:.3f}" if p.valid_acc is not None else "")

    out = _execute(training.OP, ident, req, Hooks(on_log=log))
    return {"expert_id": out.expert_id, "path": str(out.path), "task": req.rl.task, "method": req.rl.method,
            "metrics": out.metrics, "reused": out.reused}


@task(name="train-baseline", cache_key_fn=_key(baseline.OP), persist_result=True, task_run_name=_name("baseline"))
def baseline_step(ident: ModelIdent, req: baseline.BaselineRequest) -> dict[str, Any]:
    """Train a PEFT baseline (LoRA-NTP, IA3, DoRA) or SVF-NTP on reference solutions; into the catalog."""
    logger = get_run_logger()
    cfg = req.ntp

    def log(step: int, loss: float) -> None:
        if step % 10 == 0 or step == cfg.steps:
            logger.info("baseline %s/%s step %d: loss %.4f", cfg.method, cfg.task, step, loss)

    out = _execute(baseline.OP, ident, req, Hooks(on_log=log))
    return {"expert_id": out.expert_id, "method": cfg.method, "task": cfg.task, "reused": out.reused,
            "final_loss": out.metrics.get("final_loss")}


@task(name="evaluate", cache_key_fn=_key(evaluation.OP), persist_result=True, task_run_name=_name("eval"))
def eval_step(ident: ModelIdent, req: evaluation.EvalRequest) -> dict[str, Any]:
    """Evaluate the base model, or it with an SVF expert or a PEFT adapter, on one slice; rows go to the catalog."""
    out = _execute(evaluation.OP, ident, req)
    return {"run_id": out.run_id, "task": req.eval.task, "variant": out.variant, "accuracy": out.accuracy,
            "n": out.n, "reused": out.reused}


@task(name="few-shot", cache_key_fn=_key(fewshot.OP), persist_result=True,
      task_run_name=lambda: f"few-shot-{task_run.parameters['req'].cfg.task}")
def few_shot_step(ident: ModelIdent, req: fewshot.FewShotRequest) -> dict[str, Any]:
    """CEM over the experts' mixing weights on shots of an unseen task (resumes from its last generation)."""
    logger = get_run_logger()

    def log(st) -> None:
        logger.info("CEM generation %d: best accuracy %.3f", st.generation, st.best_fitness[0])

    res = _execute(fewshot.OP, ident, req, Hooks(on_generation=log))
    return {"run_id": res.run_id, "expert_id": res.expert.id, "alpha": res.alpha.tolist(),
            "generations": res.state.generation, "reused": res.reused}


@task(name="adapt", cache_key_fn=_key(adaptation.OP), persist_result=True,
      task_run_name=lambda: "adapt-{0.strategy}-{0.eval.task}".format(task_run.parameters["req"]))
def adapt_step(ident: ModelIdent, req: adaptation.AdaptRequest) -> dict[str, Any]:
    """Two-pass evaluation of one unseen-task slice with one strategy (paper §3.3)."""
    out = _execute(adaptation.OP, ident, req)
    return {"run_id": out.run_id, "task": req.eval.task, "strategy": req.strategy, "accuracy": out.accuracy,
            "n": out.n, "reused": out.reused}


@task(name="lora-pick", cache_key_fn=_key(pick.OP), persist_result=True,
      task_run_name=lambda: f"lora-pick-{task_run.parameters['req'].cfg.task}")
def pick_step(ident: ModelIdent, req: pick.PickRequest) -> dict[str, Any]:
    """Choose one of the LoRAs by its score on the unseen task's few-shot prompts (no test data)."""
    out = _execute(pick.OP, ident, req)
    return {"run_id": out.run_id, "expert_id": out.picked, "accuracy": out.scores[out.picked][0],
            "reused": out.reused}


@task(name="transfer", cache_key_fn=_key(transfer.OP), persist_result=True,
      task_run_name=lambda: f"transfer-{task_run.parameters['req'].control}")
def transfer_step(ident: ModelIdent, req: transfer.TransferRequest) -> dict[str, Any]:
    """Move one source expert to the destination model `ident` (paper §4.4), with a control."""
    out = _execute(transfer.OP, ident, req)
    return {"run_id": out.run_id, "expert_id": out.expert_id, "source": out.source, "task": out.task,
            "control": out.control, "mapping": out.mapping, "reused": out.reused}
