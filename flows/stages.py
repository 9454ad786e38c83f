"""The stages of a flow run: planned and checked where the flow runs, computed where its task runner
puts them, recorded by the flow's process (issue 22).

For each stage the flow's process plans the request (pure: `op.plan`), reads it back when the catalog
has it (`catalog.execute.is_done`), and otherwise executes its prerequisites, marks it `running` and
hands the plan to the Prefect task `run-stage`. The task loads the model in the process it runs in
(the flow's own, or a Dask worker's), runs the operation and *returns* its records with the outcome,
the worker's name and the seconds. The flow's process writes the records, so the catalog keeps one
writer whatever runs the stages. Artifacts are shared through `T2_HOME` (a shared filesystem across
machines): a stage whose artifacts the flow's process cannot see is refused with the path.

With the local runner (the default) a stage runs when it is submitted, in submission order: the
behaviour and results of a run without Dask. With the Dask runner a submitted stage runs as soon as a
worker is free, and `outcome()` waits for it.

`only` (`t2 run --stages`) runs a part of a flow: the stages whose names match one of its patterns, plus
the prerequisites they plan (an SVD, a few-shot search). Any other stage is read back when the catalog
has it and is otherwise `Skipped`. A selected stage that needs a skipped stage's outcome (an evaluation
of an expert nobody trained yet) is `Blocked`, and the summary names what it needs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import dask
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog.execute import is_done, model_record
from catalog.records import write_records
from catalog.runs import fail_run, recorded, start_run
from flows.progress import stage_hooks
from flows.runtime import get_model
from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError, T2Error
from t2core.memory import peak_memory, release_freed
from t2ops.model import ModelIdent
from t2ops.operation import Operation, Plan
from t2ops.records import RunMetrics


@dataclass(frozen=True)
class StageResult:
    """What a stage's task sends back to the flow's process."""

    outcome: Any
    records: tuple
    worker: str  # where it ran: host:pid, or the Dask worker's name
    seconds: float
    memory: dict = field(default_factory=dict)  # its peak memory where it ran (t2core/memory.py)


def _where() -> str:
    try:
        from distributed import get_worker

        return get_worker().name if isinstance(get_worker().name, str) else f"dask-{get_worker().name}"
    except (ImportError, ValueError):  # not on a Dask worker: the flow's process
        return f"{socket.gethostname()}:{os.getpid()}"


@task(name="run-stage", retries=0, cache_policy=NO_CACHE, persist_result=False)
def run_stage(op: Operation, label: str, ident: ModelIdent, plan: Plan, deps: dict) -> StageResult:
    """Run one planned stage where this task was placed; the catalog is never opened here."""
    loaded = get_model(ident.name, ident.seed, ident.factor_dtype)
    t0 = time.perf_counter()
    release_freed()  # what the previous stage freed goes back first, so its peak is not counted again
    with peak_memory() as peak:
        out = op.run(plan, loaded, deps, stage_hooks(label, get_run_logger(), op.size(plan)))
    extra = (RunMetrics(plan.run_id, peak),) if plan.row is not None else ()
    return StageResult(out.outcome, (model_record(loaded), *out.records, *extra), _where(),
                       time.perf_counter() - t0, peak)


# the kinds of stage names (the part before the first ':'), for checking `--stages` patterns
STAGE_KINDS = ("svd", "train", "baseline", "eval", "few-shot", "few-shot-light", "lora-pick", "adapt", "ablation",
               "transfer")


class Skipped(Exception):
    """The outcome of a stage that `only` left out and the catalog does not have."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


def check_stage_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """`--stages` patterns, each checked: its kind (before the first ':') must name a kind of stage."""
    for pat in patterns:
        kind = pat.split(":", 1)[0]
        if not any(fnmatch.fnmatchcase(k, kind) for k in STAGE_KINDS):
            raise ConfigError(f"--stages {pat!r}: {kind!r} is no kind of stage; a pattern starts with one of "
                              f"{', '.join(STAGE_KINDS)} (e.g. 'train:mbpp', 'eval:humaneval*').")
    return patterns


def matches(label: str, patterns: tuple[str, ...]) -> bool:
    """Whether `--stages` patterns (fnmatch; none: every stage) select the stage named `label`."""
    return not patterns or any(fnmatch.fnmatchcase(label, pat) for pat in patterns)


def check_patterns_match(patterns: tuple[str, ...], names: tuple[str, ...], flow: str) -> None:
    """Each `--stages` pattern must match a stage the run would list: a typo ('train:nope') would otherwise
    load the model, skip every stage and exit 0 (issue 36)."""
    for pat in patterns:
        if not any(fnmatch.fnmatchcase(n, pat) for n in names):
            kind = pat.split(":", 1)[0]
            same = [n for n in names if fnmatch.fnmatchcase(n.split(":", 1)[0], kind)] or list(names)
            shown = ", ".join(same[:12]) + (f", ... ({len(same)} in all)" if len(same) > 12 else "")
            raise ConfigError(f"--stages {pat!r} matches no stage of {flow}; its stages include {shown} "
                              "(`t2 plan` lists them all).")


@dataclass
class Stage:
    label: str
    op: Operation
    plan: Plan
    future: Any = None  # the Prefect future of its task (Dask runner), until collected
    outcome: Any = None
    state: str = "Completed"  # Completed (ran now) | Cached (read back from the catalog) | Failed
    worker: str = ""
    seconds: float = 0.0
    memory: dict = field(default_factory=dict)
    collected: bool = False


@dataclass
class Stages:
    """The stages of one flow run, by run id: a run asked for twice (a base evaluation that a z = 1
    expert's evaluation also needs; two controls that move a z = 1 expert to the same expert) is planned
    and run once, and listed again under its second name as `Cached`."""

    concurrent: bool = False  # True: submit to the flow's task runner (Dask); False: run when submitted
    executes: bool = True  # stages run (a plan's `PlanningStages` walks the same bodies and runs nothing)
    gpu: bool = False  # each stage asks its Dask worker for the resource GPU=1 (workers made per GPU)
    cat: Catalog = field(default_factory=Catalog)
    by_run: dict[str, Stage] = field(default_factory=dict)
    listed: list[tuple[str, Stage, bool]] = field(default_factory=list)  # (name asked for, its stage, first?)
    only: tuple[str, ...] = ()  # `--stages` patterns (fnmatch on the stage names); empty: every stage
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (selected stage, the skipped one it needs)

    def selected(self, label: str) -> bool:
        return matches(label, self.only)

    @contextlib.contextmanager
    def guard(self, label: str):
        """Around the planning and submission of stage `label`: where it needs the outcome of a skipped
        stage, it is left out (and listed as blocked when it was selected)."""
        try:
            yield
        except Skipped as e:
            if self.selected(label):
                self.blocked.append((label, e.label))

    def model(self, name: str, seed: int, factor_dtype: str = "float32") -> ModelIdent:
        """Another model for a part of the flow (the transfer's destination), loaded in the flow's process."""
        return load_model_step(name, seed, factor_dtype)

    def submit(self, label: str, op: Operation, ident: ModelIdent, req: Any) -> Stage:
        return self.submit_plan(label, op, ident, op.plan(req, ident))

    def submit_plan(self, label: str, op: Operation, ident: ModelIdent, plan: Plan, listed: bool = True) -> Stage:
        """`listed` False: a prerequisite of another stage, run (once) as part of it."""
        if plan.run_id in self.by_run:
            if listed:
                self.listed.append((label, self.by_run[plan.run_id], False))
            return self.by_run[plan.run_id]
        stage = self.by_run[plan.run_id] = Stage(label, op, plan)
        if listed:
            self.listed.append((label, stage, True))
        if is_done(self.cat, plan):
            stage.outcome, stage.state, stage.collected = op.done(plan, recorded(self.cat, plan.run_id)), "Cached", True
            return stage
        if listed and not self.selected(label):
            stage.state, stage.collected = "Skipped", True
            return stage
        deps = {k: self.outcome(self.submit_plan(f"{label}/{k}", o, ident, p, listed=False))
                for k, (o, p) in op.needs(plan).items()}
        if plan.row is not None:
            start_run(self.cat, plan.row)
        call = run_stage.with_options(task_run_name=label)
        if self.concurrent:
            with dask.annotate(resources={"GPU": 1}) if self.gpu else contextlib.nullcontext():
                stage.future = call.submit(op, label, ident, plan, deps)
        else:
            self._collect(stage, lambda: call(op, label, ident, plan, deps))
        return stage

    def outcome(self, stage: Stage) -> Any:
        """The stage's outcome, waiting for it (and recording it) if it still runs; `Skipped` for a stage
        that `only` left out."""
        if stage.state == "Skipped":
            raise Skipped(stage.label)
        if not stage.collected:
            self._collect(stage, stage.future.result)
        return stage.outcome

    def _collect(self, stage: Stage, result) -> None:
        t0 = time.perf_counter()
        try:
            res: StageResult = result()
        except BaseException as e:
            stage.state, stage.collected = "Failed", True
            if stage.plan.row is not None:
                fail_run(self.cat, stage.plan.run_id, f"{type(e).__name__}: {e}")
            raise
        store = ArtifactStore()
        missing = [store.path(k, key) for k, key in stage.plan.outputs if not store.exists(k, key)]
        if missing:  # the worker wrote them under a T2_HOME this process does not see
            fail_run(self.cat, stage.plan.run_id, f"artifact not visible here: {missing[0]}")
            raise T2Error(f"stage {stage.label} ran on {res.worker}, but its artifact {missing[0]} is not there from "
                          f"the flow's process: T2_HOME ({store.root}) must be one shared filesystem (e.g. NFS) for "
                          "the flow and every worker.")
        write_records(self.cat, res.records)
        stage.outcome, stage.worker, stage.memory, stage.collected = res.outcome, res.worker, res.memory, True
        stage.seconds = res.seconds if self.concurrent else time.perf_counter() - t0


@task(name="load-model", retries=0)
def load_model_step(model: str, seed: int = 0, factor_dtype: str = "float32") -> ModelIdent:
    """Load (or convert) the model in the flow's process and register it; its identity plans every stage
    (and says how the stages hold its SVD factors: `factor_dtype`, the profile's)."""
    from t2ops.model import ident_of

    loaded = get_model(model, seed, factor_dtype)
    write_records(Catalog(), [model_record(loaded)])
    return ident_of(loaded, model)


def _peak(memory: dict) -> float | None:
    """The host peak a stage reported (MB), whichever way it could be measured."""
    return memory.get("peak_host_mb", memory.get("peak_host_mb_since_start"))


def summary(label: str, stage: Stage, first: bool = True) -> dict[str, Any]:
    """One line of `t2 run`'s table: the stage, how it ended, where it ran, its time and what it produced.
    A run asked for again (`first` False) is `Cached` there."""
    o = stage.outcome
    again = not first
    if stage.state == "Skipped":
        return {"step": label, "state": "Skipped", "worker": "", "seconds": 0.0, "run_id": stage.plan.run_id,
                "reused": False, "note": "not in --stages"}
    out: dict[str, Any] = {"step": label, "state": "Cached" if again else stage.state,
                           "worker": "" if again else stage.worker, "seconds": 0.0 if again else stage.seconds,
                           "peak_mb": None if again else _peak(stage.memory), "run_id": stage.plan.run_id,
                           "reused": again or stage.state == "Cached" or bool(getattr(o, "reused", False))}
    if stage.op.name == "svd":
        out.update(key=o.info.key, bytes=o.info.bytes, max_error=o.info.max_error, n_matrices=o.info.n_matrices,
                   reused=o.info.reused)
    elif stage.op.name in ("train", "baseline"):
        out.update(expert_id=o.expert_id, run_id=o.expert_id, accuracy=o.metrics.get("best_valid"))
    elif stage.op.name in ("eval", "adapt"):
        out.update(accuracy=o.accuracy, n=o.n)
    elif stage.op.name == "few-shot":
        out.update(expert_id=o.expert.id, alpha=o.alpha.tolist(), generations=o.state.generation)
    elif stage.op.name == "pick":
        out.update(expert_id=o.picked, accuracy=o.scores[o.picked][0])
    elif stage.op.name == "transfer":
        out.update(expert_id=o.expert_id, source=o.source, task=o.task, control=o.control, mapping=o.mapping)
    return out
