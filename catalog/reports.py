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
    return _save(fig, out)


# ---------------------------------------------------------------- self-adaptation (paper §3.3, §4.2)

UNSEEN = ("math", "humaneval", "arc_challenge")  # the paper's unseen tasks
STRATEGY_ROWS = ("prompt", "cls-expert", "few-shot")


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs: b (only A right), c (only B right)."""
    from math import comb

    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def _latest_evals(cat: Catalog, tasks: list[str], model: str | None, split: str = "test") -> list[tuple]:
    """(model, task, method, strategy, run_id, acc, n) of the completed eval runs on `tasks`."""
    _, rows = cat.query(
        "SELECT r.model, r.task, coalesce(r.method, 'base'), r.strategy, r.run_id, m.value, n.value FROM runs r"
        " JOIN metrics m ON m.run_id = r.run_id AND m.name = 'accuracy'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.split = ? AND list_contains(?, r.task)"
        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [split, tasks, model, model])
    return rows


def _paired(cat: Catalog, run: str, base: str) -> tuple[int, float] | None:
    """(pairs, exact McNemar p) of `run` against `base` over the samples both answered."""
    _, rows = cat.query(
        "SELECT count(*), count(*) FILTER (WHERE a.correct AND NOT b.correct),"
        " count(*) FILTER (WHERE b.correct AND NOT a.correct)"
        " FROM samples a JOIN samples b ON a.sample_id = b.sample_id WHERE a.run_id = ? AND b.run_id = ?", [run, base])
    n, only_a, only_b = rows[0]
    return (int(n), mcnemar_p(int(only_a), int(only_b))) if n else None


def _base_index(cat: Catalog, tasks: list[str], model: str | None) -> dict[tuple[str, str], dict[int, tuple]]:
    """{(model, task): {n: (run, acc, n)}}: the latest base-model evaluation of each slice size."""
    out: dict[tuple[str, str], dict[int, tuple]] = {}
    for mdl, task, method, strategy, rid, acc, n in _latest_evals(cat, tasks, model):
        if method == "base" and not strategy:
            out.setdefault((mdl, task), {})[int(n)] = (rid, acc, int(n))
    return out


def _base_for(index: dict, mdl: str, task: str, n: int | None) -> tuple | None:
    """The base evaluation of the same slice (same n) as a row's, else the largest: p pairs what both answered."""
    return _sized(index.get((mdl, task), {}), n)


def table2(cat: Catalog, model: str | None = None, shots: int | None = None) -> Table:
    """Base, LoRA and the three adaptation strategies on the unseen tasks (paper Table 2).

    Per cell: accuracy, n, and the exact McNemar p against base on the same questions. For LoRA the
    paper reports the training-task LoRA that scores best *on each test set*: that row is labelled as
    such (it selects on test data) and filled only where every LoRA of the model was evaluated. Two
    rows are chosen without test data: "lora (same category)", the LoRA trained on the training task
    of the unseen task's category, and "lora (few-shot pick)", the LoRA that scored best on the
    few-shot search's shots. The few-shot row never saw a test question; it is the search with the most
    shots of its task (fewer shots: Tables 8 and 10)."""
    tasks = benchmark_tasks(UNSEEN)
    rows = _latest_evals(cat, tasks, model)
    if not rows:
        from t2core.errors import T2Error

        raise T2Error("no evaluations of the unseen tasks in the catalog; run `t2 run full-paper` (or "
                      "`t2 eval --task arc_challenge_cloze` and `t2 adapt --strategy prompt --task arc_challenge_cloze`).")
    _, lora_rows = cat.query(  # every LoRA adapter of each model and the task it was trained on
        "SELECT m.alias, e.expert_id, e.task, e.method FROM experts e JOIN models m USING (weights_hash)"
        " WHERE e.method IN ('lora', 'lora-pg')")
    adapters = {(mdl, eid): (task, method) for mdl, eid, task, method in lora_rows}
    cell: dict[tuple[str, str, str], tuple[str, float, int]] = {}  # (model, row, task) -> (run, acc, n)
    lora_cells: dict[tuple[str, str], dict[str, tuple[str, float, int]]] = {}  # (model, task) -> {variant: cell}
    _, variants = cat.query("SELECT run_id, variant, config_json FROM runs WHERE kind = 'eval'")
    variant_of = {rid: v for rid, v, _ in variants}
    config_of = {rid: c for rid, _, c in variants}
    full = {s["run_id"] for s in _full_searches(_searches(cat, model), shots).values()}  # not cross-model
    for mdl, task, method, strategy, rid, acc, n in rows:  # later runs (and larger n) win
        if strategy == "few-shot" and _search_of(config_of[rid]) not in full:
            continue  # a search with fewer shots than the task's full one (Tables 8 and 10), or cross-model
        if not strategy and method in ("lora", "lora-pg"):
            seen = lora_cells.setdefault((mdl, task), {})
            if variant_of[rid] not in seen or n >= seen[variant_of[rid]][2]:  # the whole slice beats a part
                seen[variant_of[rid]] = (rid, acc, int(n))
            continue
        row = strategy or ("base" if method == "base" else method)
        prev = cell.get((mdl, row, task))
        if prev is None or n >= prev[2]:
            cell[(mdl, row, task)] = (rid, acc, int(n))
    for (mdl, task), evald in lora_cells.items():
        mine = {v for (m, v) in adapters if m == mdl}
        if mine and mine <= set(evald):  # every LoRA of the model was measured here: the paper's pick
            cell[(mdl, "lora (best on test)", task)] = max(evald.values(), key=lambda c: c[1])
        same = sorted((adapters[(mdl, v)][1] != "lora", v) for v in evald
                      if (mdl, v) in adapters and get_task(adapters[(mdl, v)][0]).category == get_task(task).category)
        if same:  # chosen without test data: the LoRA trained on the task of the same category (NTP first)
            cell[(mdl, "lora (same category)", task)] = evald[same[0][1]]
    import json

    _, picks = cat.query("SELECT model, task, config_json FROM runs WHERE kind = 'select' AND status = 'completed'"
                         " ORDER BY finished_at")
    for mdl, task, cfg in picks:  # chosen without test data: the best LoRA on the few-shot prompts
        picked = json.loads(cfg)["picked"]
        for t in tasks:  # the pick's task and its other protocols (e.g. ARC-Challenge letters / cloze)
            if t == task and picked in lora_cells.get((mdl, t), {}):
                cell[(mdl, "lora (few-shot pick)", t)] = lora_cells[(mdl, t)][picked]
    models = sorted({k[0] for k in cell})
    present = [t for t in tasks if any(k[2] == t for k in cell)]
    cols = ["model", "method"] + [f"{t} acc (n, p vs base)" for t in present]
    out = []
    for mdl in models:
        if not any(k[0] == mdl and k[1] != "base" for k in cell):
            continue  # only base evaluations on these tasks (e.g. a transfer destination: Table 5)
        for row in ("base", "lora (best on test)", "lora (same category)", "lora (few-shot pick)", *STRATEGY_ROWS):
            vals = []
            for t in present:
                c = cell.get((mdl, row, t))
                if c is None:
                    vals.append(None)
                    continue
                base = cell.get((mdl, "base", t))
                pair = _paired(cat, c[0], base[0]) if base and row != "base" else None
                vals.append(f"{c[1]:.3f} (n={c[2]}" + (f", p={pair[1]:.3g})" if pair else ")"))
            out.append([mdl, row, *vals])
    return Table("Table 2: self-adaptation on unseen tasks (test split; p: exact McNemar against base on the "
                 "same questions; LoRA best on test: the paper's pick, on test data; same category and few-shot pick: chosen without test data)", cols, out)


def table3(cat: Catalog, model: str | None = None) -> Table:
    """Two-pass wall time per unseen task and strategy: pass 1, pass 2 and pass 1 / pass 2 (paper Table 3)."""
    tasks = benchmark_tasks(UNSEEN)
    _, rows = cat.query(
        "SELECT r.model, r.task, r.strategy, p1.value, p2.value, n.value FROM runs r"
        " JOIN metrics p1 ON p1.run_id = r.run_id AND p1.name = 'pass1_seconds'"
        " JOIN metrics p2 ON p2.run_id = r.run_id AND p2.name = 'pass2_seconds'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.strategy IN ('prompt', 'cls-expert')"
        " AND list_contains(?, r.task) AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [tasks, model, model])
    if not rows:
        from t2core.errors import T2Error

        raise T2Error("no two-pass evaluations in the catalog; run `t2 adapt --strategy prompt --task "
                      "arc_challenge_cloze` (or `t2 run full-paper`).")
    latest = {(m, t, s): (p1, p2, n) for m, t, s, p1, p2, n in rows}
    out = [[m, t, s, int(n), p1, p2, (p1 / p2 if p2 else None)] for (m, t, s), (p1, p2, n) in sorted(latest.items())]
    return Table("Table 3: two-pass inference time (seconds for the whole slice; paper: pass 1 is 13%, 19%, 47% "
                 "of pass 2)", ["model", "task", "strategy", "n", "pass 1 s", "pass 2 s", "pass 1 / pass 2"], out)


def figure6(cat: Catalog, out: Path, model: str | None = None) -> Path:
    """Confusion matrices of prompt dispatch and the cls-expert on the unseen tasks' questions: rows the
    task's true category, columns the category pass 1 chose (paper Figure 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from t2core.adapt import CATEGORIES

    tasks = benchmark_tasks(UNSEEN)
    _, rows = cat.query(
        "SELECT r.strategy, r.task, split_part(s.decision, '->', 1), count(*) FROM runs r JOIN samples s USING (run_id)"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.strategy IN ('prompt', 'cls-expert')"
        " AND list_contains(?, r.task) AND (? IS NULL OR r.model = ?) GROUP BY ALL", [tasks, model, model])
    if not rows:
        from t2core.errors import T2Error

        raise T2Error("no dispatch decisions in the catalog; run `t2 adapt --strategy prompt --task math` "
                      "(or `t2 run full-paper`).")
    strategies = [s for s in ("prompt", "cls-expert") if any(r[0] == s for r in rows)]
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
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    """Write a figure as a PNG atomically (temp file + rename): an interrupted report leaves no half file."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)
    return out


def _searches(cat: Catalog, model: str | None, cross: bool = False) -> list[dict]:
    """Completed few-shot searches (runs of kind `adapt`): task, α, experts (with their tasks), shots.
    `cross`: only the cross-model ones (over experts transferred from another model: Table 5), else
    only the others (Tables 2, 8, 10, Figure 7)."""
    import json

    _, rows = cat.query("SELECT r.run_id, r.model, r.task, r.config_json, r.seconds FROM runs r WHERE r.kind = 'adapt'"
                        " AND r.status = 'completed' AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at",
                        [model, model])
    _, ex = cat.query("SELECT expert_id, task FROM experts")
    task_of = dict(ex)
    _, secs = cat.query("SELECT m.run_id, m.value FROM metrics m JOIN runs r USING (run_id) WHERE r.kind = 'adapt'"
                        " AND m.name = 'generations'")
    generations = dict(secs)
    moved = set(_transfers(cat, model))
    out = []
    for rid, mdl, task, cfg, seconds in rows:
        c = json.loads(cfg)
        if bool(moved & set(c["experts"])) != cross:
            continue
        out.append({"run_id": rid, "model": mdl, "task": task, "alpha": c["alpha"], "experts": c["experts"],
                    "expert_tasks": [task_of.get(e, e) for e in c["experts"]], "shots": len(c["shots"]),
                    "few_shot": c["few_shot"], "seconds": seconds, "generations": generations.get(rid)})
    return out


def _full_searches(searches: list[dict], shots: int | None = None) -> dict[tuple[str, str], dict]:
    """(model, task) -> its "full" few-shot search: the latest one with `shots` shots (the profile's, which
    `t2 report --profile` passes), or, where there is none (or `shots` is None), the one with the most.
    Table 2 and Figure 7 show it; Table 8 shows every shot count, Table 10 the full one and fewer."""
    full: dict[tuple[str, str], dict] = {}
    for s in searches:  # ordered by finished_at
        prev = full.get((s["model"], s["task"]))
        if prev is None or (s["shots"] == shots) or (prev["shots"] != shots and s["shots"] >= prev["shots"]):
            full[(s["model"], s["task"])] = s
    return full


def _search_of(config_json: str) -> str:
    """The few-shot search run id a two-pass evaluation's config names ("dispatch": "few-shot/<run id>")."""
    import json

    spec = json.loads(config_json).get("dispatch", "")
    return spec.partition("/")[2] if spec.startswith("few-shot/") else ""


def figure7(cat: Catalog, out: Path, model: str | None = None, shots: int | None = None) -> Path:
    """The mixing coefficients α the few-shot search learned per unseen task (paper Figure 7): one bar
    per expert (labelled by its training task); per-layer α is shown as its mean over layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    found = _searches(cat, model)
    if not found:
        from t2core.errors import T2Error

        raise T2Error("no few-shot searches in the catalog; run `t2 adapt --strategy few-shot --task "
                      "arc_challenge_cloze` (or `t2 run full-paper`).")
    latest = _full_searches(found, shots)
    fig, axes = plt.subplots(1, len(latest), figsize=(4 * len(latest), 3.5), squeeze=False)
    for ax, ((mdl, task), s) in zip(axes[0], sorted(latest.items()), strict=True):
        a = np.array(s["alpha"], dtype=float)
        a = a.mean(axis=1) if a.ndim == 2 else a
        ax.bar(range(len(a)), a)
        ax.set(xticks=range(len(a)), xticklabels=s["expert_tasks"], ylim=(0, 1), ylabel="α",
               title=f"Figure 7: {task}\n{mdl}, {s['shots']} shots")
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return _save(fig, out)


def _few_shot_evals(cat: Catalog, model: str | None) -> list[tuple]:
    """(model, task, run_id, config_json, accuracy, n) of the completed few-shot evaluations, oldest first."""
    _, rows = cat.query(
        "SELECT r.model, r.task, r.run_id, r.config_json, m.value, n.value FROM runs r"
        " JOIN metrics m ON m.run_id = r.run_id AND m.name = 'accuracy'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.strategy = 'few-shot'"
        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [model, model])
    return rows


def table8(cat: Catalog, model: str | None = None) -> Table:
    """Few-shot adaptation by number of shots (paper Table 8): the few-shot evaluations of each unseen
    task, one row per shot count, with n and the McNemar p against base, beside IA3 trained by
    next-token prediction on the same shots (same split and seed) and evaluated on the same slice."""

    searches = {s["run_id"]: s for s in _searches(cat, model)}
    rows = _few_shot_evals(cat, model)
    bases = _base_index(cat, benchmark_tasks(UNSEEN), model)
    ia3 = _shot_adapters(cat, model)  # (model, task, shots, split, seed) -> (accuracy, n, steps)
    out = []
    for mdl, task, rid, cfg, acc, n in rows:
        search = searches.get(_search_of(cfg))
        if search is None:
            continue
        fs = search["few_shot"]
        base = _base_for(bases, mdl, task, int(n))
        pair = _paired(cat, rid, base[0]) if base else None
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


def _shot_adapters(cat: Catalog, model: str | None) -> dict[tuple, tuple[float, int]]:
    """IA3 adapters trained on few-shot prompts (`t2 baseline --method ia3 --shots N`) and their test
    accuracy: (model, task, shots, split, seed, n) -> (accuracy, steps)."""
    import json

    _, rows = cat.query(
        "SELECT r.model, r.task, t.config_json, m.value, n.value FROM runs r"
        " JOIN experts e ON e.expert_id = r.variant JOIN runs t ON t.run_id = e.run_id"
        " JOIN metrics m ON m.run_id = r.run_id AND m.name = 'accuracy'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.method = 'ia3' AND (? IS NULL OR r.model = ?)"
        " ORDER BY r.finished_at", [model, model])
    out = {}
    for mdl, task, tcfg, acc, n in rows:
        c = json.loads(tcfg)
        if c.get("shots") and c.get("task") == task:
            out[(mdl, task, c["shots"], c.get("shot_split", "train"), c["seed"], int(n))] = (acc, c["steps"])
    return out


def table10(cat: Catalog, model: str | None = None, shots: int | None = None) -> Table:
    """Few-shot adaptation with fewer prompts, "light" (paper Table 10): per unseen task, base, the full
    search (`shots`: the profile's; see `_full_searches`) and every search with fewer shots, with what each
    search cost (generations, seconds) and the exact McNemar p against base and against the full search."""
    searches = {s["run_id"]: s for s in _searches(cat, model)}
    full = {k: s["run_id"] for k, s in _full_searches(list(searches.values()), shots).items()}
    rows = _few_shot_evals(cat, model)
    evals: dict[tuple[str, str, str], tuple[str, float, int]] = {}  # (model, task, search) -> (run, acc, n)
    for mdl, task, rid, cfg, acc, n in rows:
        sid = _search_of(cfg)
        if sid in searches:
            evals[(mdl, task, sid)] = (rid, acc, int(n))
    bases = _base_index(cat, benchmark_tasks(UNSEEN), model)
    out = []
    for (mdl, task) in sorted({(m, t) for m, t, _ in evals}):
        full_eval = evals.get((mdl, task, full.get((mdl, task), "")))
        base = _base_for(bases, mdl, task, full_eval[2] if full_eval else None)
        if base:
            out.append([mdl, task, "base", None, None, None, base[1], base[2], None, None])
        top = searches[full[(mdl, task)]]["shots"] if (mdl, task) in full else None
        mine = sorted(((searches[sid], ev) for (m, t, sid), ev in evals.items()
                       if (m, t) == (mdl, task) and (top is None or searches[sid]["shots"] < top
                                                     or sid == full[(mdl, task)])),
                      key=lambda p: -p[0]["shots"])
        for s, (rid, acc, n) in mine:
            is_full = s["run_id"] == full.get((mdl, task))
            p_base = _paired(cat, rid, base[0]) if base else None
            p_full = _paired(cat, rid, full_eval[0]) if full_eval and not is_full else None
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
                  "p vs full"], out)


def _cell(cat: Catalog, c: tuple[str, float, int] | None, base: tuple[str, float, int] | None) -> str | None:
    """"acc (n=…, p=…)" of eval run c = (run, acc, n), p the exact McNemar test against `base`."""
    if c is None:
        return None
    pair = _paired(cat, c[0], base[0]) if base and base[0] != c[0] else None
    return f"{c[1]:.3f} (n={c[2]}" + (f", p={pair[1]:.3g})" if pair else ")")


def _transfers(cat: Catalog, model: str | None) -> dict[str, list[dict]]:
    """{destination expert id: [{source_model, control, task, model}]} of the completed transfers (one
    expert can be the product of several controls when they coincide, e.g. z = 1 everywhere)."""
    import json

    _, rows = cat.query("SELECT model, task, config_json FROM runs WHERE kind = 'transfer' AND status = 'completed'"
                        " AND (? IS NULL OR model = ?) ORDER BY finished_at", [model, model])
    out: dict[str, list[dict]] = {}
    for mdl, task, cfg in rows:
        c = json.loads(cfg)
        out.setdefault(c["expert"], []).append({"model": mdl, "task": task, "source_model": c["source_model"],
                                                "control": c["control"], "mapping": c["mapping"]["kind"]})
    return out


TRANSFER_ROWS = ("ordered", "shuffled", "random")


def _transfer_cells(cat: Catalog, model: str | None, tasks: list[str], same_task: bool
                    ) -> dict[tuple[str, str, str], tuple[str, float, int]]:
    """(destination model, "<source model> <control>", task) -> the evaluation of the transferred expert:
    on its own task (`same_task`, Table 9) or on a task of its category (Table 5)."""
    transfers = _transfers(cat, model)
    _, variants = cat.query("SELECT run_id, variant FROM runs WHERE kind = 'eval'")
    variant_of = dict(variants)
    cells: dict[tuple[str, str, str], tuple[str, float, int]] = {}
    for mdl, task, method, strategy, rid, acc, n in _latest_evals(cat, tasks, model):
        eid = (variant_of.get(rid) or "").removeprefix("svf:")
        if strategy or method != "svf" or "svf:" + eid not in transfers:
            continue
        for t in transfers["svf:" + eid]:
            fits = t["task"] == task if same_task else get_task(t["task"]).category == get_task(task).category
            if t["model"] == mdl and fits:
                cells[(mdl, f"{t['source_model']} {t['control']}", task)] = (rid, acc, int(n))
    return cells


def table9(cat: Catalog, model: str | None = None) -> Table:
    """Transferred experts on the training tasks (paper Table 9): per destination model, its base, its
    own experts, and each source model's experts moved to it (ordered, shuffled, random), each on the
    task it was trained for; n and the exact McNemar p against the destination's base."""
    tasks = benchmark_tasks(TRAIN_TASKS)
    cells = _transfer_cells(cat, model, tasks, same_task=True)
    if not cells:
        from t2core.errors import T2Error

        raise T2Error("no evaluations of transferred experts in the catalog; run `t2 run transfer` (or `t2 transfer "
                      "--src A --dst B --control ordered,shuffled,random`, then `t2 eval --model B --expert ...`).")
    return _transfer_table(cat, model, tasks, cells, ("own expert",),
                           "Table 9: SVF experts transferred to another model, on their training tasks (test split; "
                           "p: exact McNemar against the destination's base)")


def table5(cat: Catalog, model: str | None = None) -> Table:
    """Transfer on the unseen tasks (paper Table 5): the destination's base and its own Table 2 rows, each
    source's transferred expert of the unseen task's category (ordered, shuffled, random), and few-shot
    adaptation over the union of transferred and own experts (cross-model few-shot)."""
    tasks = benchmark_tasks(UNSEEN)
    cells = _transfer_cells(cat, model, tasks, same_task=False)
    cross = {s["run_id"] for s in _searches(cat, model, cross=True)}
    cross_evals = {rid for _, _, rid, cfg, _, _ in _few_shot_evals(cat, model) if _search_of(cfg) in cross}
    for mdl, task, _method, strategy, rid, acc, n in _latest_evals(cat, tasks, model):
        if strategy == "few-shot" and rid in cross_evals:
            cells[(mdl, "cross-model few-shot", task)] = (rid, acc, int(n))
    if not cells:
        from t2core.errors import T2Error

        raise T2Error("no evaluations of transferred experts on the unseen tasks in the catalog; run `t2 run transfer` "
                      "(or `t2 transfer ...` then `t2 eval --model B --task arc_challenge_cloze --expert ...`).")
    return _transfer_table(cat, model, tasks, cells, STRATEGY_ROWS,
                           "Table 5: cross-model transfer on unseen tasks (test split; a transferred expert is applied "
                           "to the unseen tasks of its category; p: exact McNemar against the destination's base)")


def _transfer_table(cat: Catalog, model: str | None, tasks: list[str], cells: dict, own_rows: tuple[str, ...],
                    title: str) -> Table:
    """Rows: base, the destination's own rows, then each source's controls; columns: tasks with a cell."""
    mine: dict[tuple[str, str, str], tuple[str, float, int]] = {}
    transferred = set(_transfers(cat, None))
    _, variants = cat.query("SELECT run_id, variant FROM runs WHERE kind = 'eval'")
    variant_of = dict(variants)
    _, own = cat.query("SELECT e.expert_id, e.task FROM experts e JOIN runs r ON r.run_id = e.run_id"
                       " WHERE r.kind = 'train' AND e.method = 'svf'")
    own_task = dict(own)
    full = {s["run_id"] for s in _full_searches(_searches(cat, model)).values()}
    search_of = {rid: _search_of(cfg) for _, _, rid, cfg, _, _ in _few_shot_evals(cat, model)}
    for mdl, task, method, strategy, rid, acc, n in _latest_evals(cat, tasks, model):
        v = variant_of.get(rid) or ""
        if method == "base" and not strategy:
            continue  # `_base_index`: base on the slice of each cell
        elif "own expert" in own_rows and method == "svf" and not strategy and own_task.get(v) == task \
                and v not in transferred:
            mine[(mdl, "own expert", task)] = (rid, acc, int(n))
        elif strategy in own_rows and (strategy != "few-shot" or search_of.get(rid) in full):
            if (mdl, "cross-model few-shot", task) in cells and cells[(mdl, "cross-model few-shot", task)][0] == rid:
                continue
            mine[(mdl, strategy, task)] = (rid, acc, int(n))
    models = sorted({k[0] for k in cells})
    present = [t for t in tasks if any(k[2] == t for k in cells)]
    bases = _base_index(cat, tasks, model)
    out = []
    for mdl in models:
        sources = sorted({k[1].rsplit(" ", 1)[0] for k in cells if k[0] == mdl and k[1] != "cross-model few-shot"})
        labels = [*own_rows, *(f"{s} {c}" for s in sources for c in TRANSFER_ROWS), "cross-model few-shot"]
        rows = {label: {t: cells.get((mdl, label, t)) or mine.get((mdl, label, t)) for t in present} for label in labels}
        rows = {label: c_of for label, c_of in rows.items() if any(c_of.values())}
        size = {t: next((c_of[t][2] for c_of in rows.values() if c_of[t]), None) for t in present}
        out.append([mdl, "base", *(_cell(cat, _base_for(bases, mdl, t, size[t]), None) for t in present)])
        for label, c_of in rows.items():  # each cell against base on the same slice
            out.append([mdl, label, *(_cell(cat, c_of[t], _base_for(bases, mdl, t, c_of[t][2] if c_of[t] else None))
                                      for t in present)])
    return Table(title, ["model", "row"] + [f"{t} acc (n, p vs base)" for t in present], out)


def _variant_label(cfg: dict) -> str | None:
    """Table 4's name of a training run from its config: SVF or LoRA, PG (RLConfig: has valid_split) or
    NTP (NTPConfig), and the matrices it adapts; None for what Table 4 does not compare (IA3, DoRA)."""
    from t2core.profiles import ABLATION_LORA_MODULES

    if "valid_split" in cfg:  # REINFORCE
        return f"SVF-PG {cfg['svf']['targets']}" if cfg["method"] == "svf" else "LoRA-PG attn"
    if cfg.get("method") == "svf":
        return f"SVF-NTP {cfg.get('svf_targets', 'mlp')}"
    if cfg.get("method") == "lora" and not cfg.get("shots"):
        mods = tuple(cfg.get("target_modules", ()))
        return "LoRA-NTP " + next((k for k, v in ABLATION_LORA_MODULES.items() if v == mods), ",".join(mods))
    return None


def _sized(by_n: dict[int, tuple[str, float, int]], n: int | None) -> tuple[str, float, int] | None:
    """The evaluation on the slice of size `n`, else the largest one there is (its n shows the difference)."""
    return by_n.get(n) or (by_n[max(by_n)] if by_n else None)


def table4(cat: Catalog, model: str | None = None) -> Table:
    """Ablations (paper Table 4): per model and training task, every SVF / LoRA variant trained by
    REINFORCE (PG) or next-token prediction (NTP) on MLP, attention or both, with its step budget,
    trainable parameters and its accuracy on each evaluated task (its own test slice and unseen ones,
    zero-shot), n and the exact McNemar p against base on the same questions."""
    import json

    _, trains = cat.query(
        "SELECT r.model, r.task, r.variant, r.config_json, coalesce(p.value, t.value) FROM runs r"
        " LEFT JOIN metrics p ON p.run_id = r.run_id AND p.name = 'n_params'"
        " LEFT JOIN metrics t ON t.run_id = r.run_id AND t.name = 'n_trainable'"
        " WHERE r.kind = 'train' AND r.status = 'completed' AND r.task <> 'dispatch'"
        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [model, model])
    _, paths = cat.query("SELECT expert_id, path FROM experts WHERE method = 'svf'")
    path_of = dict(paths)
    made = {}  # product variant -> (model, training task, label, steps, params)
    for mdl, task, variant, cfg, params in trains:
        c = json.loads(cfg)
        label = _variant_label(c)
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
        out.append([mdl, task, "base", None, None, *(_cell(cat, bases[t], None) for t in tasks)])
        for v in sorted(variants, key=lambda x: (made[x][2], made[x][3])):
            _, _, label, steps, params = made[v]
            out.append([mdl, task, label, steps, params,
                        *(_cell(cat, _sized(cells[(mdl, v)].get(t, {}), pick[t]), bases[t]) for t in tasks)])
    return Table("Table 4: ablations: parameterisation (SVF, LoRA), objective (PG: REINFORCE; NTP: next-token "
                 "prediction) and targets, one step budget per training task (test split; p: exact McNemar "
                 "against base)", ["model", "trained on", "variant", "steps", "#params",
                                   *(f"{t} acc (n, p vs base)" for t in tasks)], out)


def figure9(cat: Catalog, out: Path, model: str | None = None) -> Path:
    """Training curves of SVF-PG and LoRA-PG (paper Figure 9): validation accuracy and mean reward by
    step, per model and training task where both were trained by the same REINFORCE loop."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, runs = cat.query("SELECT run_id, model, task, config_json FROM runs WHERE kind = 'train' AND status = 'completed'"
                        " AND (? IS NULL OR model = ?) ORDER BY finished_at", [model, model])
    pg: dict[tuple[str, str], dict[str, str]] = {}
    for rid, mdl, task, cfg in runs:
        label = _variant_label(json.loads(cfg))
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
    return _save(fig, out)


def figure_expert(vectors: dict, out: Path, title: str, other: dict | None = None, other_title: str = "") -> Path:
    """`t2 inspect expert`: z − 1 for every matrix along its singular-value index (rows: block and role;
    red boosts, blue damps), the mean change by normalised rank per role, and, with a second expert,
    the cosine of the two experts' changes per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from t2core.inspect_expert import layer_cosines, profile_by_rank
    from t2core.transfer.mapping import slot

    names = sorted(vectors, key=slot)
    width = max(int(vectors[n].shape[0]) for n in names)
    img = np.full((len(names), width), np.nan)
    for i, n in enumerate(names):
        img[i, : vectors[n].shape[0]] = (vectors[n].double() - 1).numpy()
    lim = float(np.nanmax(np.abs(img))) or 1e-6
    panels = 3 if other is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False, layout="constrained")
    ax = axes[0][0]
    im = ax.imshow(img, aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim, interpolation="nearest")
    step = max(1, len(names) // 12)
    ax.set_yticks(range(0, len(names), step), [f"{slot(n)[0]}.{slot(n)[1].split('.')[-1]}" for n in names][::step],
                  fontsize=6)
    ax.set(xlabel="singular-value index (largest first)", title=f"z − 1 per matrix\n{title}")
    fig.colorbar(im, ax=ax)
    ax = axes[0][1]
    for role, prof in profile_by_rank(vectors).items():
        ax.plot(np.linspace(0, 1, len(prof)), prof.numpy(), label=role)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="normalised rank", ylabel="mean z − 1 over blocks", title="change along the spectrum")
    ax.legend(fontsize=7)
    if other is not None:
        cos = layer_cosines(vectors, other)
        ax = axes[0][2]
        ax.bar([b for b, _ in cos], [c if c is not None else 0.0 for _, c in cos])
        ax.set(xlabel="block", ylabel="cosine of z − 1", ylim=(-1, 1), title=f"vs {other_title}")
    return _save(fig, out)
