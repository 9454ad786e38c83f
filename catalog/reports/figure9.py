"""Figure 9: what the experts change along the spectrum."""

from __future__ import annotations

import json
from pathlib import Path

from catalog.db import Catalog
from catalog.reports.common import save_figure, variant_label
from catalog.reports.registry import register_report


def figure9(cat: Catalog, out: Path, model: str | None = None) -> Path:
    """Training curves of SVF-PG and LoRA-PG (paper Figure 9): validation accuracy and mean reward by
    step, per model and training task where both were trained by the same REINFORCE loop."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, runs = cat.query("SELECT r.run_id, r.model, r.task, r.config_json, e.origin, e.targets FROM runs r"
                        " LEFT JOIN experts e ON e.run_id = r.run_id WHERE r.kind = 'train' AND r.status = 'completed'"
                        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [model, model])
    pg: dict[tuple[str, str], dict[str, str]] = {}
    for rid, mdl, task, cfg, origin, targets in runs:
        label = variant_label(origin, targets, json.loads(cfg))
        if label and "-PG" in label:
            pg.setdefault((mdl, task), {})[label] = rid
    pairs = {k: v for k, v in pg.items() if any(x.startswith("SVF") for x in v) and "LoRA-PG attn" in v}
    if not pairs:
        from t2core.errors import T2Error

        raise T2Error("no task with both an SVF-PG and a LoRA-PG training run; run `t2 run ablations --profile smol` "
                      "(or `t2 train --method lora` beside the SVF expert).")
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4), squeeze=False, layout="constrained")
    for ax, ((mdl, task), labels) in zip(axes[0], sorted(pairs.items()), strict=True):
        for label, rid in sorted(labels.items()):
            _, pts = cat.query("SELECT step, mean_reward, valid_acc FROM curves WHERE run_id = ? ORDER BY step", [rid])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], alpha=0.5, label=f"{label} mean reward")
            val = [(p[0], p[2]) for p in pts if p[2] is not None]
            ax.plot([p[0] for p in val], [p[1] for p in val], marker="o", label=f"{label} validation")
        ax.set(xlabel="step", title=f"Figure 9: {task}\n{mdl}")
        ax.legend(fontsize=6)
    return save_figure(fig, out)


register_report("figure", 9, figure9)
