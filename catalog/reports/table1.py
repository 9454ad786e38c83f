"""Table 1 (paper §4.1): base model against the fine-tuning methods on the training tasks' test splits."""

from __future__ import annotations

from catalog.db import Catalog
from catalog.reports.common import METHOD_ORDER, Table, benchmark_tasks
from catalog.reports.registry import register_report
from t2core.profiles import TRAIN_TASKS  # the paper's training benchmarks (§4.1), defined once


def table1(cat: Catalog, model: str | None = None, split: str = "test") -> Table:
    """Accuracy per (model, task, method) from the latest completed eval run of each, and score / base.

    Methods come from the run's `method` column: base, svf, lora, lora-pg, ia3, dora.
    Runs are compared at equal sample counts (n); rows with another n than base show n.
    """
    sql = """
        WITH ev AS (
            SELECT r.model, r.task, coalesce(r.method, 'base') AS method,
                   m.value AS acc, n.value AS n, r.finished_at,
                   row_number() OVER (PARTITION BY r.model, r.task, coalesce(r.method, 'base')
                                      ORDER BY n.value DESC, r.finished_at DESC) AS rk
            FROM runs r
            JOIN metrics m ON m.run_id = r.run_id AND m.name = 'accuracy'
            JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'
            WHERE r.kind = 'eval' AND r.status = 'completed' AND r.split = ? AND list_contains(?, r.task)
              AND (? IS NULL OR r.model = ?)
        )
        SELECT model, task, method, acc, n FROM ev WHERE rk = 1 ORDER BY model, task
    """
    candidates = benchmark_tasks()
    _, rows = cat.query(sql, [split, candidates, model, model])
    data: dict[tuple[str, str], dict[str, tuple[float, int]]] = {}
    for mdl, task, method, acc, n in rows:
        data.setdefault((mdl, method), {})[task] = (acc, int(n))
    models = sorted({m for m, _ in data})
    present = {t for cells in data.values() for t in cells}
    tasks = [t for t in candidates if t in TRAIN_TASKS or t in present]  # + protocol variants with runs
    cols = ["model", "method"] + [f"{t} acc" for t in tasks] + [f"{t} norm" for t in tasks] + ["n"]
    out = []
    for mdl in models:
        base = data.get((mdl, "base"), {})
        methods = sorted({me for m, me in data if m == mdl}, key=lambda x: (x not in METHOD_ORDER,
                                                                             METHOD_ORDER.index(x) if x in METHOD_ORDER else 0, x))
        for me in methods:
            cells = data[(mdl, me)]
            accs = [cells[t][0] if t in cells else None for t in tasks]
            norms = []
            for t in tasks:
                if t in cells and t in base and base[t][0] > 0:
                    norms.append(cells[t][0] / base[t][0])
                else:
                    norms.append(None)
            ns = "/".join(str(cells[t][1]) if t in cells else "–" for t in tasks)
            out.append([mdl, me, *accs, *norms, ns])
    return Table("Table 1: fine-tuning on the training tasks (test split; norm = score / base; "
                 "lora = LoRA-NTP, lora-pg = LoRA trained by the REINFORCE loop)", cols, out,
                 notes=[f"n: the test items each accuracy is over, per task in column order ({', '.join(tasks)}); "
                        "– : not evaluated. norm is left out where base scored 0 or was not evaluated."], keys=2)


register_report("table", 1, table1)
