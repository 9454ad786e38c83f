"""Cross-model transfer cells (paper §4.4, Tables 5 and 9): ordered, shuffled and random controls."""

from __future__ import annotations

from catalog.db import Catalog
from catalog.reports.common import (
    Table,
    base_for,
    base_index,
    cell_text,
    latest_evals,
    searched,
    transfer_runs,
)
from catalog.reports.searches import few_shot_evals, full_searches, search_id_of, search_runs
from t2core.tasks import get_task

TRANSFER_ROWS = ("ordered", "shuffled", "random")


def transfer_cells(cat: Catalog, model: str | None, tasks: list[str], same_task: bool
                    ) -> dict[tuple[str, str, str], tuple[str, float, int]]:
    """(destination model, "<source model> <control>", task) -> the evaluation of the transferred expert:
    on its own task (`same_task`, Table 9) or on a task of its category (Table 5)."""
    transfers = transfer_runs(cat, model)
    _, variants = cat.query("SELECT run_id, variant FROM runs WHERE kind = 'eval'")
    variant_of = dict(variants)
    cells: dict[tuple[str, str, str], tuple[str, float, int]] = {}
    for mdl, task, method, strategy, rid, acc, n in latest_evals(cat, tasks, model):
        eid = (variant_of.get(rid) or "").removeprefix("svf:")
        if strategy or method != "svf" or "svf:" + eid not in transfers:
            continue
        for t in transfers["svf:" + eid]:
            fits = t["task"] == task if same_task else get_task(t["task"]).category == get_task(task).category
            if t["model"] == mdl and fits:
                cells[(mdl, f"{t['source_model']} {t['control']}", task)] = (rid, acc, int(n))
    return cells


def transfer_table(cat: Catalog, model: str | None, tasks: list[str], cells: dict, own_rows: tuple[str, ...],
                    title: str) -> Table:
    """Rows: base, the destination's own rows, then each source's controls; columns: tasks with a cell."""
    mine: dict[tuple[str, str, str], tuple[str, float, int]] = {}
    transferred = set(transfer_runs(cat, None))
    _, variants = cat.query("SELECT run_id, variant FROM runs WHERE kind = 'eval'")
    variant_of = dict(variants)
    _, own = cat.query("SELECT e.expert_id, e.task FROM experts e JOIN runs r ON r.run_id = e.run_id"
                       " WHERE r.kind = 'train' AND e.method = 'svf'")
    own_task = dict(own)
    full = {s["run_id"] for s in full_searches(search_runs(cat, model)).values()}
    search_of = {rid: search_id_of(cfg) for _, _, rid, cfg, _, _ in few_shot_evals(cat, model)}
    for mdl, task, method, strategy, rid, acc, n in latest_evals(cat, tasks, model):
        v = variant_of.get(rid) or ""
        if method == "base" and not strategy:
            continue  # `base_index`: base on the slice of each cell
        elif "own expert" in own_rows and method == "svf" and not strategy and own_task.get(v) == task \
                and v not in transferred:
            mine[(mdl, "own expert", task)] = (rid, acc, int(n))
        elif strategy in own_rows and (not searched(strategy) or search_of.get(rid) in full):
            if (mdl, "cross-model few-shot", task) in cells and cells[(mdl, "cross-model few-shot", task)][0] == rid:
                continue
            mine[(mdl, strategy, task)] = (rid, acc, int(n))
    models = sorted({k[0] for k in cells})
    present = [t for t in tasks if any(k[2] == t for k in cells)]
    bases = base_index(cat, tasks, model)
    out = []
    for mdl in models:
        sources = sorted({k[1].rsplit(" ", 1)[0] for k in cells if k[0] == mdl and k[1] != "cross-model few-shot"})
        labels = [*own_rows, *(f"{s} {c}" for s in sources for c in TRANSFER_ROWS), "cross-model few-shot"]
        rows = {label: {t: cells.get((mdl, label, t)) or mine.get((mdl, label, t)) for t in present} for label in labels}
        rows = {label: c_of for label, c_of in rows.items() if any(c_of.values())}
        size = {t: next((c_of[t][2] for c_of in rows.values() if c_of[t]), None) for t in present}
        out.append([mdl, "base", *(cell_text(cat, base_for(bases, mdl, t, size[t]), None) for t in present)])
        for label, c_of in rows.items():  # each cell against base on the same slice
            out.append([mdl, label, *(cell_text(cat, c_of[t], base_for(bases, mdl, t, c_of[t][2] if c_of[t] else None))
                                      for t in present)])
    return Table(title, ["model", "row"] + [f"{t} acc (n, p vs base)" for t in present], out, keys=2)
