"""Paper tables and figures computed from the catalog.

Table 1 (paper §4.1): base model vs fine-tuning methods on the three training tasks'
test splits, with normalised scores (score / base score); a benchmark measured under two
protocols (ARC-Easy with letters, `arc_easy`, and in the cloze formulation, `arc_easy_cloze`)
gets a column for each. Figure 4: SVF learning curves.
Only runs that exist are shown; nothing is filled in.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from catalog.db import Catalog
from t2core.profiles import TRAIN_TASKS  # the paper's training benchmarks (§4.1), defined once
from t2core.tasks import get_task, task_names


def benchmark_tasks(benchmarks: tuple[str, ...] = TRAIN_TASKS) -> list[str]:
    """Registered tasks that measure `benchmarks`, benchmark by benchmark: e.g. arc_easy, arc_easy_cloze."""
    out = []
    for b in benchmarks:
        out += sorted((t for t in task_names() if (get_task(t).benchmark or t) == b), key=lambda t: (t != b, t))
    return out
METHOD_ORDER = ("base", "lora", "lora-pg", "ia3", "dora", "svf")  # lora = LoRA-NTP, lora-pg = LoRA by REINFORCE


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list]

    def to_markdown(self) -> str:
        fmt = [_fmt(v) for v in self.columns]
        out = ["| " + " | ".join(fmt) + " |", "|" + "---|" * len(fmt)]
        out += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in self.rows]
        return f"**{self.title}**\n\n" + "\n".join(out) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.columns)
        w.writerows([[("" if v is None else v) for v in r] for r in self.rows])
        return buf.getvalue()


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


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
                 "lora = LoRA-NTP, lora-pg = LoRA trained by the REINFORCE loop)", cols, out)


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
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)
    return out
