"""Table 5 (paper §4.4): cross-model transfer onto the unseen tasks."""

from __future__ import annotations

from catalog.db import Catalog
from catalog.reports.common import UNSEEN, Table, benchmark_tasks, latest_evals, strategy_rows
from catalog.reports.registry import register_report
from catalog.reports.searches import few_shot_evals, search_id_of, search_runs
from catalog.reports.transfers import transfer_cells, transfer_table


def table5(cat: Catalog, model: str | None = None) -> Table:
    """Transfer on the unseen tasks (paper Table 5): the destination's base and its own Table 2 rows, each
    source's transferred expert of the unseen task's category (ordered, shuffled, random), and few-shot
    adaptation over the union of transferred and own experts (cross-model few-shot)."""
    tasks = benchmark_tasks(UNSEEN)
    cells = transfer_cells(cat, model, tasks, same_task=False)
    cross = {s["run_id"] for s in search_runs(cat, model, cross=True)}
    cross_evals = {rid for _, _, rid, cfg, _, _ in few_shot_evals(cat, model) if search_id_of(cfg) in cross}
    evals = latest_evals(cat, tasks, model)
    for mdl, task, _method, _strategy, rid, acc, n in evals:
        if rid in cross_evals:
            cells[(mdl, "cross-model few-shot", task)] = (rid, acc, int(n))
    if not cells:
        from t2core.errors import T2Error

        raise T2Error("no evaluations of transferred experts on the unseen tasks in the catalog; run `t2 run transfer` "
                      "(or `t2 transfer ...` then `t2 eval --model B --task arc_challenge_cloze --expert ...`).")
    return transfer_table(cat, model, tasks, cells, tuple(strategy_rows(r[3] for r in evals)),
                           "Table 5: cross-model transfer on unseen tasks (test split; a transferred expert is applied "
                           "to the unseen tasks of its category; p: exact McNemar against the destination's base)")


register_report("table", 5, table5)
