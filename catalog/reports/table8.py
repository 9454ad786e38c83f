"""Table 8: few-shot adaptation against IA3 trained on the same few shots."""

from __future__ import annotations

from catalog.db import Catalog
from catalog.reports.common import UNSEEN, Table, base_for, base_index, benchmark_tasks, paired_test
from catalog.reports.registry import register_report
from catalog.reports.searches import few_shot_evals, search_id_of, search_runs, shot_adapters


def table8(cat: Catalog, model: str | None = None) -> Table:
    """Few-shot adaptation by number of shots (paper Table 8): the few-shot evaluations of each unseen
    task, one row per shot count, with n and the McNemar p against base, beside IA3 trained by
    next-token prediction on the same shots (same split and seed) and evaluated on the same slice."""

    searches = {s["run_id"]: s for s in search_runs(cat, model)}
    rows = few_shot_evals(cat, model)
    bases = base_index(cat, benchmark_tasks(UNSEEN), model)
    ia3 = shot_adapters(cat, model)  # (model, task, shots, split, seed) -> (accuracy, n, steps)
    out = []
    for mdl, task, rid, cfg, acc, n in rows:
        search = searches.get(search_id_of(cfg))
        if search is None:
            continue
        fs = search["few_shot"]
        base = base_for(bases, mdl, task, int(n))
        pair = paired_test(cat, rid, base[0]) if base else None
        twin = ia3.get((mdl, task, search["shots"], fs["split"], fs["cem"]["seed"], int(n)))
        out.append([mdl, task, search["shots"], fs["cem"]["population"], acc, int(n), pair[1] if pair else None,
                    twin[0] if twin else None, twin[1] if twin else None])
    if not out:
        from t2core.errors import T2Error

        raise T2Error("no few-shot evaluations in the catalog; run `t2 adapt --strategy few-shot --task "
                      "arc_challenge_cloze --shots 3` (and 5, 10, 20).")
    out.sort(key=lambda r: (r[0], r[1], r[2]))
    return Table("Table 8: few-shot adaptation by number of shots, beside IA3 trained on the same shots (test "
                 "split; p: exact McNemar against base)",
                 ["model", "task", "shots", "population", "accuracy", "n", "p vs base", "IA3 same shots",
                  "IA3 steps"], out)


register_report("table", 8, table8)
