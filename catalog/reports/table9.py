"""Table 9: cross-model transfer onto the training tasks."""

from __future__ import annotations

from catalog.db import Catalog
from catalog.reports.common import Table, benchmark_tasks
from catalog.reports.registry import register_report
from catalog.reports.transfers import transfer_cells, transfer_table
from t2core.profiles import TRAIN_TASKS  # the paper's training benchmarks (§4.1), defined once


def table9(cat: Catalog, model: str | None = None) -> Table:
    """Transferred experts on the training tasks (paper Table 9): per destination model, its base, its
    own experts, and each source model's experts moved to it (ordered, shuffled, random), each on the
    task it was trained for; n and the exact McNemar p against the destination's base."""
    tasks = benchmark_tasks(TRAIN_TASKS)
    cells = transfer_cells(cat, model, tasks, same_task=True)
    if not cells:
        from t2core.errors import T2Error

        raise T2Error("no evaluations of transferred experts in the catalog; run `t2 run transfer` (or `t2 transfer "
                      "--src A --dst B --control ordered,shuffled,random`, then `t2 eval --model B --expert ...`).")
    return transfer_table(cat, model, tasks, cells, ("own expert",),
                           "Table 9: SVF experts transferred to another model, on their training tasks (test split; "
                           "p: exact McNemar against the destination's base)")


register_report("table", 9, table9)
