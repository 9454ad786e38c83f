"""The one executor: every recorded result, from the CLI or a flow, goes through `execute`.

For a plan (t2ops/operation.py) it reads the run back when it is done (completed in the catalog with
its artifacts in the store), else executes the plan's prerequisites, marks the run `running`, runs it
and writes all its records in one transaction, or marks it `failed` with the error (interrupts
included). A process killed mid-run leaves `running`; the rerun replaces it. This module is the only
writer of operation results, and the Prefect cache keys ask its `is_done`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from catalog.db import Catalog
from catalog.records import write_records
from catalog.runs import fail_run, recorded, start_run
from t2core.artifacts import ArtifactStore
from t2core.memory import peak_memory, release_freed
from t2core.models.registry import LoadedModel
from t2ops.model import ModelIdent, ident_of
from t2ops.operation import Hooks, Operation, Plan
from t2ops.records import ModelRecord, RunMetrics

Out = TypeVar("Out")


def is_done(cat: Catalog, plan: Plan) -> bool:
    store = ArtifactStore()
    return all(store.exists(kind, key) for kind, key in plan.outputs) and recorded(cat, plan.run_id) is not None


def model_record(loaded: LoadedModel) -> ModelRecord:
    return ModelRecord(loaded.weights_hash, loaded.alias, loaded.source, loaded.n_params)


def execute(op: Operation[Out], req: Any, loaded: LoadedModel, cat: Catalog, *, force: bool = False,
            hooks: Hooks | None = None, plan: Plan | None = None, ident: ModelIdent | None = None) -> Out:
    """`req` planned (unless its `plan` is given) and executed with `execute_plan`."""
    p = plan if plan is not None else op.plan(req, ident or ident_of(loaded))
    return execute_plan(op, p, loaded, cat, force=force, hooks=hooks)


def execute_plan(op: Operation[Out], plan: Plan, loaded: LoadedModel, cat: Catalog, *, force: bool = False,
                 hooks: Hooks | None = None) -> Out:
    hooks = hooks or Hooks()
    if loaded is not None:  # None: an operation that needs no model (a re-judgement of stored outputs)
        write_records(cat, [model_record(loaded)])
    if not force and is_done(cat, plan):
        return op.done(plan, recorded(cat, plan.run_id))
    deps = {k: execute_plan(o, p, loaded, cat, hooks=hooks) for k, (o, p) in op.needs(plan).items()}
    if plan.row is not None:
        start_run(cat, plan.row)
    try:
        release_freed()  # an earlier run's freed memory back first (t2core/memory.py)
        with peak_memory() as peak:
            out = op.run(plan, loaded, deps, hooks)
    except BaseException as e:  # the row says how the run ended, then the error goes on
        if plan.row is not None:
            fail_run(cat, plan.run_id, failure_reason(e))
        raise
    write_records(cat, (*out.records, *([RunMetrics(plan.run_id, peak)] if plan.row is not None else [])))
    return out.outcome


def failure_reason(e: BaseException) -> str:
    """What a failed run's row says. A signal is named whichever handler turned it into an exception: t2's
    own (t2cli/lifetime.py) or, inside a Prefect flow run, Prefect's TerminationSignal, whose text is empty
    but which carries the signal number."""
    sig = getattr(e, "signum", None) or getattr(e, "signal", None)
    if isinstance(sig, int):
        import signal

        try:
            return f"{type(e).__name__}: stopped by {signal.Signals(sig).name}"
        except ValueError:
            pass
    return f"{type(e).__name__}: {e}"
