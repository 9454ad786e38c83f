"""Figure 4: SVF learning curves (mean reward per step, validation accuracy)."""

from __future__ import annotations

from pathlib import Path

from catalog.db import Catalog
from catalog.reports.common import save_figure
from catalog.reports.registry import register_report


def figure4(cat: Catalog, out: Path, model: str | None = None) -> Path:
    """Learning curves of SVF training runs (mean reward per step, validation accuracy) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, rows = cat.query(
        "SELECT r.model, r.task, coalesce(r.method, 'svf'), r.run_id, c.step, c.mean_reward,"
        " c.valid_acc FROM curves c JOIN runs r USING (run_id)"
        " WHERE (? IS NULL OR r.model = ?) ORDER BY r.model, r.task, r.run_id, c.step", [model, model])
    runs: dict[tuple[str, str, str, str], list[tuple]] = {}
    for mdl, task, method, rid, step, rew, val in rows:
        runs.setdefault((mdl, task, method, rid), []).append((step, rew, val))
    if not runs:
        from t2core.errors import T2Error

        raise T2Error("no learning curves in the catalog; train an expert first (`t2 train --task arc_easy`).")
    _, base_rows = cat.query("SELECT run_id, value FROM metrics WHERE name = 'base_valid'")
    base_valid = dict(base_rows)  # the base model's validation accuracy: the step-0 point of each curve
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (mdl, task, method, rid), pts in runs.items():
        label = f"{mdl} {task} {method} ({rid[:6]})"
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], label=label)
        val = ([(0, base_valid[rid])] if rid in base_valid else []) + [(p[0], p[2]) for p in pts if p[2] is not None]
        if val:
            axes[1].plot([v[0] for v in val], [v[1] for v in val], marker="o", label=label)
    axes[0].set(title="Figure 4: mean reward per step", xlabel="step", ylabel="mean reward (+1/−1)")
    axes[1].set(title="validation accuracy (step 0: base model)", xlabel="step", ylabel="accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out)


register_report("figure", 4, figure4)
