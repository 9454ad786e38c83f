"""Figure 6: the confusion matrices of pass 1's dispatch."""

from __future__ import annotations

from pathlib import Path

from catalog.db import Catalog
from catalog.reports.common import UNSEEN, benchmark_tasks, classifies, save_figure, strategy_rows
from catalog.reports.registry import register_report
from t2core.tasks import get_task


def figure6(cat: Catalog, out: Path, model: str | None = None) -> Path:
    """Confusion matrices of each strategy that classifies question by question (prompt dispatch, the
    cls-expert, and any other registered one that does) on the unseen tasks' questions: rows the task's
    true category, columns the category pass 1 chose (paper Figure 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from t2core.adapt import CATEGORIES

    tasks = benchmark_tasks(UNSEEN)
    _, rows = cat.query(
        "SELECT r.strategy, r.task, split_part(s.decision, '->', 1), count(*) FROM runs r JOIN samples s USING (run_id)"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.strategy IS NOT NULL"
        " AND list_contains(?, r.task) AND (? IS NULL OR r.model = ?) GROUP BY ALL", [tasks, model, model])
    rows = [r for r in rows if classifies(r[0])]
    if not rows:
        from t2core.errors import T2Error

        raise T2Error("no dispatch decisions in the catalog; run `t2 adapt --strategy prompt --task math` "
                      "(or `t2 run full-paper`).")
    strategies = [s for s in strategy_rows(r[0] for r in rows) if any(r[0] == s for r in rows)]
    fig, axes = plt.subplots(1, len(strategies), figsize=(5 * len(strategies), 4), squeeze=False)
    true_cats = ["math", "code", "reasoning"]
    for ax, strat in zip(axes[0], strategies, strict=True):
        import numpy as np

        m = np.zeros((len(true_cats), len(CATEGORIES)))
        for s, task, chosen, n in rows:
            if s == strat and get_task(task).category in true_cats and chosen in CATEGORIES:
                m[true_cats.index(get_task(task).category), CATEGORIES.index(chosen)] += n
        frac = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(true_cats)):
            for j in range(len(CATEGORIES)):
                ax.text(j, i, f"{frac[i, j]:.2f}\n({int(m[i, j])})", ha="center", va="center", fontsize=8)
        ax.set(xticks=range(len(CATEGORIES)), xticklabels=CATEGORIES, yticks=range(len(true_cats)),
               yticklabels=true_cats, xlabel="pass-1 category", ylabel="true category", title=f"Figure 6: {strat}")
    fig.tight_layout()
    return save_figure(fig, out)


register_report("figure", 6, figure6)
