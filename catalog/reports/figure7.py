"""Figure 7: the few-shot mixing weights α."""

from __future__ import annotations

from pathlib import Path

from catalog.db import Catalog
from catalog.reports.common import save_figure
from catalog.reports.registry import register_report
from catalog.reports.searches import full_searches, search_runs


def figure7(cat: Catalog, out: Path, model: str | None = None, shots: int | None = None) -> Path:
    """The mixing coefficients α the few-shot search learned per unseen task (paper Figure 7): one bar
    per expert (labelled by its training task); per-layer α is shown as its mean over layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    found = search_runs(cat, model)
    if not found:
        from t2core.errors import T2Error

        raise T2Error("no few-shot searches in the catalog; run `t2 adapt --strategy few-shot --task "
                      "arc_challenge_cloze` (or `t2 run full-paper`).")
    latest = full_searches(found, shots)
    fig, axes = plt.subplots(1, len(latest), figsize=(4 * len(latest), 3.5), squeeze=False)
    for ax, ((mdl, task), s) in zip(axes[0], sorted(latest.items()), strict=True):
        a = np.array(s["alpha"], dtype=float)
        a = a.mean(axis=1) if a.ndim == 2 else a
        ax.bar(range(len(a)), a)
        ax.set(xticks=range(len(a)), xticklabels=s["expert_tasks"], ylim=(0, 1), ylabel="α",
               title=f"Figure 7: {task}\n{mdl}, {s['shots']} shots")
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return save_figure(fig, out)


register_report("figure", 7, figure7, takes_shots=True)
