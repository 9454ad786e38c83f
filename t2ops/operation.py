"""The shape every recorded operation has (svd, evaluation, training, baseline, few-shot, adapt, pick,
transfer), so that one executor (`catalog/execute.py`) runs and records them all.

An operation is an object with
- `plan(req, ident)`: pure — the run's content id, its run row, the artifacts it leaves and its
  verified inputs, from the request and the model's identity (`ModelIdent`), with no model or catalog;
- `done(plan, recorded)`: the outcome of a run already completed, from what the catalog holds of it
  (`Recorded`) and the artifact store (nothing runs);
- `needs(plan)`: runs that must be complete first, as {name: (operation, plan)} (a z = 1 expert's base
  run, an adaptation's search); their outcomes reach `run` as `deps`;
- `run(plan, loaded, deps, hooks)`: produces the artifacts and *returns* the outcome with the catalog
  records (`Produced`, t2ops/records.py), writing nothing to the catalog;
- `footprint(req, ctx)`: the memory, disk and work of a run of `req`, from the model's shapes alone
  (`t2core.plan.work.Work`; `t2 plan` adds them up before anything runs: issue 35).

A run is done when the catalog has it completed and every artifact in `plan.outputs` is in the store.
`run` needs a model and the store, never the catalog, so it can be computed in another process or on
another machine while the catalog keeps its single writer (issue 22). t2ops never imports the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from t2core.models.registry import LoadedModel
from t2core.registry import Registry
from t2ops.model import ModelIdent
from t2ops.records import RunRow

Out = TypeVar("Out")


@dataclass(frozen=True)
class Hooks:
    """Progress callbacks a caller may pass; each operation uses those that apply to it."""

    progress: Callable[..., None] | None = None  # evaluations: samples done; svd: (matrices done, total)
    on_log: Callable[..., None] | None = None  # training: a curve point (REINFORCE) or (step, loss) (NTP)
    on_generation: Callable[..., None] | None = None  # few-shot search: a CEM state after each generation


@dataclass(frozen=True)
class Produced(Generic[Out]):
    outcome: Out
    records: tuple = ()  # t2ops.records: what the executor writes, all in one transaction


@dataclass(frozen=True)
class Recorded:
    """What the catalog holds of one completed run, read in one go."""

    run_id: str
    config: dict
    metrics: dict[str, float]
    expert: tuple[str, str] | None = None  # (expert id, path) of the expert or adapter it produced


class Plan(Protocol):
    run_id: str
    row: RunRow | None  # marked running while it runs; None: nothing to mark (an SVD is recorded once done)
    outputs: tuple[tuple[str, str], ...]  # (artifact kind, key) the run leaves in the store


class Operation(Protocol[Out]):
    name: str

    def plan(self, req: Any, ident: ModelIdent) -> Plan: ...

    def done(self, plan: Any, recorded: Recorded) -> Out: ...

    def needs(self, plan: Any) -> dict[str, tuple[Operation, Plan]]: ...

    def run(self, plan: Any, loaded: LoadedModel, deps: dict[str, Any], hooks: Hooks) -> Produced[Out]: ...

    def size(self, plan: Any) -> int | None: ...

    def footprint(self, req: Any, ctx: Any) -> Any: ...


class OperationBase:
    """The defaults: no prerequisites, no known size."""

    name = ""

    def needs(self, plan) -> dict:
        return {}

    def size(self, plan) -> int | None:
        """The steps, items or generations its progress hooks count to (None: not known)."""
        return None


OPERATIONS: Registry[Operation] = Registry("operation")


def register_operation(op: Operation) -> Operation:
    return OPERATIONS.register(op.name, op)
