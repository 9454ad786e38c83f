"""Table 4 (paper §4.3): ablations (targets, objective, parameterisation), with their sizes."""

from __future__ import annotations

import json

from catalog.db import Catalog
from catalog.reports.common import UNSEEN, Table, benchmark_tasks, cell_text, sized_run, variant_label
from catalog.reports.registry import register_report
from t2core.profiles import TRAIN_TASKS  # the paper's training benchmarks (§4.1), defined once


def table4(cat: Catalog, model: str | None = None) -> Table:
    """Ablations (paper Table 4): per model and training task, every SVF / LoRA variant trained by
    REINFORCE (PG) or next-token prediction (NTP) on MLP, attention or both, with its step budget,
    trainable parameters and its accuracy on each evaluated task (its own test slice and unseen ones,
    zero-shot), n and the exact McNemar p against base on the same questions."""

    _, trains = cat.query(
        "SELECT r.model, r.task, r.variant, r.config_json, coalesce(p.value, t.value), e.origin, e.targets FROM runs r"
        " LEFT JOIN experts e ON e.run_id = r.run_id"
        " LEFT JOIN metrics p ON p.run_id = r.run_id AND p.name = 'n_params'"
        " LEFT JOIN metrics t ON t.run_id = r.run_id AND t.name = 'n_trainable'"
        " WHERE r.kind = 'train' AND r.status = 'completed' AND r.task <> 'dispatch'"
        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [model, model])
    _, paths = cat.query("SELECT expert_id, path FROM experts WHERE method = 'svf'")
    path_of = dict(paths)
    made = {}  # product variant -> (model, training task, label, steps, params)
    for mdl, task, variant, cfg, params, origin, targets in trains:
        c = json.loads(cfg)
        label = variant_label(origin, targets, c)
        if params is None and variant in path_of:  # SVF experts recorded before n_params was: their vectors' length
            from t2core.errors import ArtifactError
            from t2core.svf import read_header

            try:
                params = sum(read_header(path_of[variant]).ranks.values())
            except ArtifactError:  # a moved or broken file (read_header says which): the count is unknown, the row stays
                params = None
        if label and variant:
            made[variant] = (mdl, task, label, c["steps"], int(params) if params is not None else None)
    _, ev_rows = cat.query(
        "SELECT r.run_id, r.model, r.task, r.variant, m.value, n.value FROM runs r"
        " JOIN metrics m ON m.run_id = r.run_id AND m.name = 'accuracy'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.split = 'test' AND r.strategy IS NULL"
        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [model, model])
    base: dict[tuple[str, str, int], tuple[str, float, int]] = {}
    # (model, variant) -> {task: {n: cell}}: every slice size a variant was evaluated on (the latest per size)
    cells: dict[tuple[str, str], dict[str, dict[int, tuple[str, float, int]]]] = {}
    for rid, mdl, task, variant, acc, n in ev_rows:
        if variant in (None, "base"):
            base[(mdl, task, int(n))] = (rid, acc, int(n))
        elif variant in made:
            cells.setdefault((mdl, variant), {}).setdefault(task, {})[int(n)] = (rid, acc, int(n))
    groups: dict[tuple[str, str], list[str]] = {}
    for (mdl, variant) in cells:
        groups.setdefault((mdl, made[variant][1]), []).append(variant)
    groups = {k: v for k, v in groups.items() if len({made[x][2] for x in v}) >= 2}  # an ablation compares
    if not groups:
        from t2core.errors import T2Error

        raise T2Error("no ablation in the catalog (two or more evaluated variants on one training task); run "
                      "`t2 run ablations --profile smol`.")
    evaluated = {t for (mdl, v) in cells for t in cells[(mdl, v)] if (mdl, made[v][1]) in groups}
    tasks = [t for b in (*TRAIN_TASKS, *UNSEEN) for t in benchmark_tasks((b,)) if t in evaluated]
    out = []
    for (mdl, task), variants in sorted(groups.items()):
        bases, pick = {}, {}
        for t in tasks:  # one slice per column: the size most variants were evaluated on (ties: the larger)
            sizes = [n for v in variants for n in cells[(mdl, v)].get(t, {})]
            pick[t] = max(set(sizes), key=lambda n: (sizes.count(n), n)) if sizes else None
            bases[t] = base.get((mdl, t, pick[t]))  # base on the same slice
        out.append([mdl, task, "base", None, None, *(cell_text(cat, bases[t], None) for t in tasks)])
        for v in sorted(variants, key=lambda x: (made[x][2], made[x][3])):
            _, _, label, steps, params = made[v]
            out.append([mdl, task, label, steps, params,
                        *(cell_text(cat, sized_run(cells[(mdl, v)].get(t, {}), pick[t]), bases[t]) for t in tasks)])
    return Table("Table 4: ablations: parameterisation (SVF, LoRA), objective (PG: REINFORCE; NTP: next-token "
                 "prediction) and targets, one step budget per training task (test split; p: exact McNemar "
                 "against base)", ["model", "trained on", "variant", "steps", "#params",
                                   *(f"{t} acc (n, p vs base)" for t in tasks)], out, keys=3)


register_report("table", 4, table4)
