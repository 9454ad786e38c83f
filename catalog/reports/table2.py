"""Table 2 (paper §4.2): base, LoRA and the adaptation strategies (the paper's three, and any other with
runs) on the unseen tasks."""

from __future__ import annotations

import json

from catalog.db import Catalog
from catalog.reports.common import (
    UNSEEN,
    Table,
    benchmark_tasks,
    latest_evals,
    paired_test,
    searched,
    strategy_rows,
)
from catalog.reports.registry import register_report
from catalog.reports.searches import full_searches, search_id_of, search_runs
from t2core.tasks import get_task


def table2(cat: Catalog, model: str | None = None, shots: int | None = None) -> Table:
    """Base, LoRA and the three adaptation strategies on the unseen tasks (paper Table 2).

    Per cell: accuracy, n, and the exact McNemar p against base on the same questions. For LoRA the
    paper reports the training-task LoRA that scores best *on each test set*: that row is labelled as
    such (it selects on test data) and filled only where every LoRA of the model was evaluated. Two
    rows are chosen without test data: "lora (same category)", the LoRA trained on the training task
    of the unseen task's category, and "lora (few-shot pick)", the LoRA that scored best on the
    few-shot search's shots. The few-shot row never saw a test question; it is the search with the most
    shots of its task (fewer shots: Tables 8 and 10)."""
    tasks = benchmark_tasks(UNSEEN)
    rows = latest_evals(cat, tasks, model)
    if not rows:
        from t2core.errors import T2Error

        raise T2Error("no evaluations of the unseen tasks in the catalog; run `t2 run full-paper` (or "
                      "`t2 eval --task arc_challenge_cloze` and `t2 adapt --strategy prompt --task arc_challenge_cloze`).")
    _, lora_rows = cat.query(  # every LoRA adapter of each model and the task it was trained on
        "SELECT m.alias, e.expert_id, e.task, e.method FROM experts e JOIN models m USING (weights_hash)"
        " WHERE e.method IN ('lora', 'lora-pg')")
    adapters = {(mdl, eid): (task, method) for mdl, eid, task, method in lora_rows}
    cell: dict[tuple[str, str, str], tuple[str, float, int]] = {}  # (model, row, task) -> (run, acc, n)
    lora_cells: dict[tuple[str, str], dict[str, tuple[str, float, int]]] = {}  # (model, task) -> {variant: cell}
    _, variants = cat.query("SELECT run_id, variant, config_json FROM runs WHERE kind = 'eval'")
    variant_of = {rid: v for rid, v, _ in variants}
    config_of = {rid: c for rid, _, c in variants}
    full = {s["run_id"] for s in full_searches(search_runs(cat, model), shots).values()}  # not cross-model
    strategies = {r[3] for r in rows if r[3]}
    for mdl, task, method, strategy, rid, acc, n in rows:  # later runs (and larger n) win
        if strategy and searched(strategy) and search_id_of(config_of[rid]) not in full:
            continue  # a search with fewer shots than the task's full one (Tables 8 and 10), or cross-model
        if not strategy and method in ("lora", "lora-pg"):
            seen = lora_cells.setdefault((mdl, task), {})
            if variant_of[rid] not in seen or n >= seen[variant_of[rid]][2]:  # the whole slice beats a part
                seen[variant_of[rid]] = (rid, acc, int(n))
            continue
        row = strategy or ("base" if method == "base" else method)
        prev = cell.get((mdl, row, task))
        if prev is None or n >= prev[2]:
            cell[(mdl, row, task)] = (rid, acc, int(n))
    for (mdl, task), evald in lora_cells.items():
        mine = {v for (m, v) in adapters if m == mdl}
        if mine and mine <= set(evald):  # every LoRA of the model was measured here: the paper's pick
            cell[(mdl, "lora (best on test)", task)] = max(evald.values(), key=lambda c: c[1])
        same = sorted((adapters[(mdl, v)][1] != "lora", v) for v in evald
                      if (mdl, v) in adapters and get_task(adapters[(mdl, v)][0]).category == get_task(task).category)
        if same:  # chosen without test data: the LoRA trained on the task of the same category (NTP first)
            cell[(mdl, "lora (same category)", task)] = evald[same[0][1]]

    _, picks = cat.query("SELECT model, task, config_json FROM runs WHERE kind = 'select' AND status = 'completed'"
                         " ORDER BY finished_at")
    for mdl, task, cfg in picks:  # chosen without test data: the best LoRA on the few-shot prompts
        picked = json.loads(cfg)["picked"]
        for t in tasks:  # the pick's task and its other protocols (e.g. ARC-Challenge letters / cloze)
            if t == task and picked in lora_cells.get((mdl, t), {}):
                cell[(mdl, "lora (few-shot pick)", t)] = lora_cells[(mdl, t)][picked]
    models = sorted({k[0] for k in cell})
    present = [t for t in tasks if any(k[2] == t for k in cell)]
    cols = ["model", "method"] + [f"{t} acc (n, p vs base)" for t in present]
    out = []
    for mdl in models:
        if not any(k[0] == mdl and k[1] != "base" for k in cell):
            continue  # only base evaluations on these tasks (e.g. a transfer destination: Table 5)
        for row in ("base", "lora (best on test)", "lora (same category)", "lora (few-shot pick)",
                    *strategy_rows(k[1] for k in cell if k[0] == mdl and k[1] in strategies)):
            vals = []
            for t in present:
                c = cell.get((mdl, row, t))
                if c is None:
                    vals.append(None)
                    continue
                base = cell.get((mdl, "base", t))
                pair = paired_test(cat, c[0], base[0]) if base and row != "base" else None
                vals.append(f"{c[1]:.3f} (n={c[2]}" + (f", p={pair[1]:.3g})" if pair else ")"))
            out.append([mdl, row, *vals])
    return Table("Table 2: self-adaptation on unseen tasks (test split; p: exact McNemar against base on the "
                 "same questions; LoRA best on test: the paper's pick, on test data; same category and few-shot pick: chosen without test data)", cols, out, keys=2)


register_report("table", 2, table2, takes_shots=True)
