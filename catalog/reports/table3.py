"""Table 3 (paper §4.2): the two passes' times."""

from __future__ import annotations

from catalog.db import Catalog
from catalog.reports.common import UNSEEN, Table, benchmark_tasks, classifies
from catalog.reports.registry import register_report


def table3(cat: Catalog, model: str | None = None) -> Table:
    """Two-pass wall time per unseen task and strategy: pass 1, pass 2 and pass 1 / pass 2 (paper Table 3), for
    every strategy whose pass 1 classifies each question (`common.classifies`: prompt, cls-expert, and any
    other registered one that does)."""
    tasks = benchmark_tasks(UNSEEN)
    _, rows = cat.query(
        "SELECT r.model, r.task, r.strategy, p1.value, p2.value, n.value FROM runs r"
        " JOIN metrics p1 ON p1.run_id = r.run_id AND p1.name = 'pass1_seconds'"
        " JOIN metrics p2 ON p2.run_id = r.run_id AND p2.name = 'pass2_seconds'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.strategy IS NOT NULL"
        " AND list_contains(?, r.task) AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [tasks, model, model])
    rows = [r for r in rows if classifies(r[2])]
    if not rows:
        from t2core.errors import T2Error

        raise T2Error("no two-pass evaluations in the catalog; run `t2 adapt --strategy prompt --task "
                      "arc_challenge_cloze` (or `t2 run full-paper`).")
    latest = {(m, t, s): (p1, p2, n) for m, t, s, p1, p2, n in rows}
    out = [[m, t, s, int(n), p1, p2, (p1 / p2 if p2 else None)] for (m, t, s), (p1, p2, n) in sorted(latest.items())]
    return Table("Table 3: two-pass inference time (seconds for the whole slice; paper: pass 1 is 13%, 19%, 47% "
                 "of pass 2)", ["model", "task", "strategy", "n", "pass 1 s", "pass 2 s", "pass 1 / pass 2"], out,
                 keys=3)


register_report("table", 3, table3)
