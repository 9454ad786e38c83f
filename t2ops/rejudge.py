"""Re-judging a stored evaluation: its outputs scored again, nothing generated (issue 42).

Why: the answer is fixed once generated; only the judgement changes — a task version bump (a
scoring defect fixed), or another scoring scheme (`released`, the paper's code's scorers, for a
like-for-like comparison with its numbers). The new run is its own record (kind `rejudge`),
linked to the run whose outputs it read (`config.rejudge_of`), so the old verdicts stay as they
were and `t2 compare` pairs the two item by item.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from t2core.errors import DataError
from t2core.evaluate import EvalResult, SampleResult
from t2core.ids import content_id
from t2core.models.registry import LoadedModel
from t2core.paths import resolve_data_dir
from t2core.scoring import check_scheme
from t2core.tasks import get_task
from t2core.variants import VariantRef
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import EvalRecord, RunRow


@dataclass(frozen=True)
class StoredSample:
    idx: int
    sample_id: str
    prompt: str
    output: str
    correct: bool
    expert_ids: tuple[str, ...] = ()
    alphas: tuple[float, ...] = ()
    decision: str | None = None


@dataclass(frozen=True)
class StoredEval:
    """A completed evaluation as the catalog holds it (catalog/stored.py reads it)."""

    run_id: str
    model: str
    weights_hash: str
    task: str
    task_version: str
    split: str
    config: dict
    data_files: dict
    seed: int
    variant: VariantRef
    strategy: str | None
    samples: tuple[StoredSample, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class RejudgeRequest:
    source: StoredEval
    scoring: str = "t2"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_scheme(self.scoring)


@dataclass(frozen=True)
class RejudgePlan:
    run_id: str
    row: RunRow
    req: RejudgeRequest
    items: tuple  # the dataset's samples, in the stored rows' order
    outputs: tuple = ()


@dataclass(frozen=True)
class RejudgeOutcome:
    run_id: str
    source: str
    accuracy: float | None
    source_accuracy: float | None
    n: int
    changed: int  # items whose verdict differs from the stored one
    reused: bool
    result: EvalResult | None = None


def rejudge_run_id(source_run: str, scoring: str, task_version: str) -> str:
    return content_id(["rejudge", source_run, scoring, task_version])


class RejudgeOp(OperationBase):
    name = "rejudge"

    def plan(self, req: RejudgeRequest, ident: ModelIdent | None = None) -> RejudgePlan:
        src = req.source
        task = get_task(src.task)
        ds = task.load(src.split, resolve_data_dir(req.data_dir))
        if sorted(ds.files.values()) != sorted(src.data_files.values()):
            raise DataError(f"run {src.run_id[:12]} was judged on other {src.task}/{src.split} data files "
                            f"({sorted(src.data_files)}) than the ones found now; re-judge it where its data is, "
                            "or evaluate again.")
        by_id = {s.id: s for s in ds.samples}
        missing = [s.sample_id for s in src.samples if s.sample_id not in by_id]
        if missing:
            raise DataError(f"run {src.run_id[:12]}: {len(missing)} stored items are not in {src.task}/{src.split} "
                            f"(e.g. {missing[0]!r}); it cannot be re-judged against this data.")
        run_id = rejudge_run_id(src.run_id, req.scoring, task.version)
        config = {"rejudge_of": src.run_id, "scoring": req.scoring, "source_task_version": src.task_version,
                  "source": src.config}
        row = RunRow(run_id=run_id, kind="rejudge", model=src.model, weights_hash=src.weights_hash, task=src.task,
                     task_version=task.version, split=src.split, config=config, data_files=src.data_files,
                     seed=src.seed, variant=src.variant, strategy=src.strategy)
        return RejudgePlan(run_id, row, req, tuple(by_id[s.sample_id] for s in src.samples))

    def done(self, plan: RejudgePlan, recorded: Recorded) -> RejudgeOutcome:
        m = recorded.metrics
        return RejudgeOutcome(plan.run_id, plan.req.source.run_id, m.get("accuracy"), m.get("source_accuracy"),
                              int(m.get("n") or 0), int(m.get("n_changed") or 0), True)

    def size(self, plan: RejudgePlan) -> int:
        return len(plan.items)

    def run(self, plan: RejudgePlan, loaded: LoadedModel | None, deps: dict, hooks: Hooks) -> Produced[RejudgeOutcome]:
        src, task = plan.req.source, get_task(plan.req.source.task)
        t0 = time.perf_counter()
        scores = task.score_many(list(plan.items), [s.output for s in src.samples], plan.req.scoring)
        seconds = time.perf_counter() - t0
        rows = [SampleResult(s.idx, s.sample_id, s.prompt, s.output, sc.parsed, task.reference(item), sc.correct,
                             sc.detail, 0, s.expert_ids, s.alphas, s.decision)
                for s, item, sc in zip(src.samples, plan.items, scores, strict=True)]
        changed = sum(s.correct != r.correct for s, r in zip(src.samples, rows, strict=True))
        before = sum(s.correct for s in src.samples) / max(1, len(src.samples))
        res = EvalResult(run_id=plan.run_id, kind="rejudge", ref=src.variant, model=src.model,
                         weights_hash=src.weights_hash, task=src.task, task_version=task.version, split=src.split,
                         config=plan.row.config, data_files=src.data_files, samples=rows, seconds=seconds,
                         seed=src.seed, strategy=src.strategy,
                         extra_metrics={"n_changed": float(changed), "source_accuracy": before})
        return Produced(RejudgeOutcome(plan.run_id, src.run_id, res.accuracy, before, len(rows), changed, False, res),
                        (EvalRecord(res),))

    def footprint(self, req, ctx):
        """Stored outputs judged again: no model work (the code judge runs in the sandbox) (t2core/plan/)."""
        from t2core.plan import footprint as fp
        from t2core.plan.work import Work

        return Work(fp.Footprint(()), local=False)


OP = register_operation(RejudgeOp())
