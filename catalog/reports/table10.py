"""Table 10: few-shot adaptation by the number of shots."""

from __future__ import annotations

from catalog.db import Catalog
from catalog.reports.common import UNSEEN, Table, base_for, base_index, benchmark_tasks, paired_test
from catalog.reports.registry import register_report
from catalog.reports.searches import few_shot_evals, full_searches, search_id_of, search_runs


def table10(cat: Catalog, model: str | None = None, shots: int | None = None) -> Table:
    """Few-shot adaptation with fewer prompts, "light" (paper Table 10): per unseen task, base, the full
    search (`shots`: the profile's; see `full_searches`) and every search with fewer shots, with what each
    search cost (generations, seconds) and the exact McNemar p against base and against the full search."""
    searches = {s["run_id"]: s for s in search_runs(cat, model)}
    full = {k: s["run_id"] for k, s in full_searches(list(searches.values()), shots).items()}
    rows = few_shot_evals(cat, model)
    evals: dict[tuple[str, str, str], tuple[str, float, int]] = {}  # (model, task, search) -> (run, acc, n)
    for mdl, task, rid, cfg, acc, n in rows:
        sid = search_id_of(cfg)
        if sid in searches:
            evals[(mdl, task, sid)] = (rid, acc, int(n))
    bases = base_index(cat, benchmark_tasks(UNSEEN), model)
    out = []
    for (mdl, task) in sorted({(m, t) for m, t, _ in evals}):
        full_eval = evals.get((mdl, task, full.get((mdl, task), "")))
        base = base_for(bases, mdl, task, full_eval[2] if full_eval else None)
        if base:
            out.append([mdl, task, "base", None, None, None, base[1], base[2], None, None])
        top = searches[full[(mdl, task)]]["shots"] if (mdl, task) in full else None
        mine = sorted(((searches[sid], ev) for (m, t, sid), ev in evals.items()
                       if (m, t) == (mdl, task) and (top is None or searches[sid]["shots"] < top
                                                     or sid == full[(mdl, task)])),
                      key=lambda p: -p[0]["shots"])
        for s, (rid, acc, n) in mine:
            is_full = s["run_id"] == full.get((mdl, task))
            p_base = paired_test(cat, rid, base[0]) if base else None
            p_full = paired_test(cat, rid, full_eval[0]) if full_eval and not is_full else None
            gens = int(s["generations"]) if s["generations"] is not None else None
            secs = round(s["seconds"], 1) if s["seconds"] is not None else None
            out.append([mdl, task, "full" if is_full else "light", s["shots"], gens, secs, acc, n,
                        p_base[1] if p_base else None, p_full[1] if p_full else None])
    if not out:
        from t2core.errors import T2Error

        raise T2Error("no few-shot evaluations in the catalog; run `t2 run full-paper` (a profile with "
                      "adapt.light_shots) or `t2 adapt --strategy few-shot --task arc_challenge_cloze --shots 3`.")
    return Table("Table 10: few-shot adaptation with fewer prompts (light) beside the full search (test split; "
                 "p: exact McNemar on the same questions)",
                 ["model", "task", "row", "shots", "generations", "search s", "accuracy", "n", "p vs base",
                  "p vs full"], out, keys=3)


register_report("table", 10, table10, takes_shots=True)
