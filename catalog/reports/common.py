"""What every report shares: the table type, formatting, and the catalog queries that find the runs to compare."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from catalog.db import Catalog
from catalog.reports.stats import mcnemar_p
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
    notes: list[str] = field(default_factory=list)  # legends printed under the table (what `n` counts, ...)
    keys: int = 1  # the leading columns that name a row (e.g. model and method: 2); the rest hold its results

    def trimmed(self) -> Table:
        """The table as shown: a row with no result (a model or method the catalog has nothing for) and a
        result column empty in every row left are left out."""
        def empty(v) -> bool:
            return v is None or v in ("", "–")

        rows = [r for r in self.rows if not all(empty(v) for v in r[self.keys:])]
        keep = [j for j in range(len(self.columns)) if j < self.keys or not all(empty(r[j]) for r in rows)]
        return Table(self.title, [self.columns[j] for j in keep], [[r[j] for j in keep] for r in rows], self.notes,
                     self.keys)

    def to_markdown(self) -> str:
        fmt = [fmt_cell(v) for v in self.columns]
        out = ["| " + " | ".join(fmt) + " |", "|" + "---|" * len(fmt)]
        out += ["| " + " | ".join(fmt_cell(v) for v in r) + " |" for r in self.rows]
        legend = "".join(f"\n_{n}_\n" for n in self.notes)
        return f"**{self.title}**\n\n" + "\n".join(out) + "\n" + legend

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.columns)
        w.writerows([[("" if v is None else v) for v in r] for r in self.rows])
        return buf.getvalue()


def fmt_cell(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


UNSEEN = ("math", "humaneval", "arc_challenge")  # the paper's unseen tasks


def strategy_rows(present=()) -> list[str]:
    """The adaptation strategies a table shows as rows: the paper's three (§3.3, the profiles' default
    `adapt.strategies`), then every other strategy with runs in the catalog (`present`), by name. A
    strategy registered by its own file reaches Tables 2, 3, 5 and Figure 6 once it has runs."""
    from t2core.profiles import PAPER_STRATEGIES

    return [*PAPER_STRATEGIES, *sorted({s for s in present if s and s not in PAPER_STRATEGIES})]


def classifies(strategy: str) -> bool:
    """Whether a strategy's pass 1 classifies question by question (`Strategy.per_question`): Table 3 times
    that pass and Figure 6 shows its confusion matrix. A strategy with runs but no longer registered is
    shown (its runs are data)."""
    from t2core.adapt import strategy_class, strategy_names

    return strategy not in strategy_names() or strategy_class(strategy).per_question


def searched(strategy: str) -> bool:
    """Whether a strategy answers with a few-shot search's mixture (`needs` "search"): which search a run
    used then decides the table it belongs to (the full one: Table 2; fewer shots: Tables 8 and 10)."""
    from t2core.adapt import strategy_class, strategy_names

    return strategy in strategy_names() and "search" in strategy_class(strategy).needs


def latest_evals(cat: Catalog, tasks: list[str], model: str | None, split: str = "test") -> list[tuple]:
    """(model, task, method, strategy, run_id, acc, n) of the completed eval runs on `tasks`."""
    _, rows = cat.query(
        "SELECT r.model, r.task, coalesce(r.method, 'base'), r.strategy, r.run_id, m.value, n.value FROM runs r"
        " JOIN metrics m ON m.run_id = r.run_id AND m.name = 'accuracy'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.split = ? AND list_contains(?, r.task)"
        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [split, tasks, model, model])
    return rows


def paired_counts(cat: Catalog, a: str, b: str) -> tuple[int, int, int, int, int]:
    """(pairs, both right, only `a` right, only `b` right, both wrong) over the samples both runs answered."""
    _, rows = cat.query(
        "SELECT count(*), count(*) FILTER (WHERE a.correct AND b.correct),"
        " count(*) FILTER (WHERE a.correct AND NOT b.correct), count(*) FILTER (WHERE b.correct AND NOT a.correct),"
        " count(*) FILTER (WHERE NOT a.correct AND NOT b.correct)"
        " FROM samples a JOIN samples b ON a.sample_id = b.sample_id WHERE a.run_id = ? AND b.run_id = ?", [a, b])
    return tuple(int(x) for x in rows[0])  # type: ignore[return-value]


def paired_test(cat: Catalog, run: str, base: str) -> tuple[int, float] | None:
    """(pairs, exact McNemar p) of `run` against `base` over the samples both answered."""
    n, _, only_a, only_b, _ = paired_counts(cat, run, base)
    return (n, mcnemar_p(only_a, only_b)) if n else None


def base_index(cat: Catalog, tasks: list[str], model: str | None) -> dict[tuple[str, str], dict[int, tuple]]:
    """{(model, task): {n: (run, acc, n)}}: the latest base-model evaluation of each slice size."""
    out: dict[tuple[str, str], dict[int, tuple]] = {}
    for mdl, task, method, strategy, rid, acc, n in latest_evals(cat, tasks, model):
        if method == "base" and not strategy:
            out.setdefault((mdl, task), {})[int(n)] = (rid, acc, int(n))
    return out


def base_for(index: dict, mdl: str, task: str, n: int | None) -> tuple | None:
    """The base evaluation of the same slice (same n) as a row's, else the largest: p pairs what both answered."""
    return sized_run(index.get((mdl, task), {}), n)


def save_figure(fig, out: Path) -> Path:
    """Write a figure as a PNG atomically (temp file + rename): an interrupted report leaves no half file."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)
    return out


def cell_text(cat: Catalog, c: tuple[str, float, int] | None, base: tuple[str, float, int] | None) -> str | None:
    """"acc (n=…, p=…)" of eval run c = (run, acc, n), p the exact McNemar test against `base`."""
    if c is None:
        return None
    pair = paired_test(cat, c[0], base[0]) if base and base[0] != c[0] else None
    return f"{c[1]:.3f} (n={c[2]}" + (f", p={pair[1]:.3g})" if pair else ")")


def variant_label(origin: str | None, targets: str | None, cfg: dict) -> str | None:
    """Table 4's name of a training run from the expert it made (its method, recorded as `experts.origin`,
    and the matrices it adapts): e.g. "SVF-PG mlp", "LoRA-NTP attn"; None for what Table 4 does not
    compare (IA3, DoRA, a LoRA trained on few-shot prompts, a run whose expert has no recorded origin)."""
    from t2core.methods import get_method, method_names
    from t2core.profiles import ABLATION_LORA_MODULES

    if origin not in method_names() or not get_method(origin).ablated or cfg.get("shots"):
        return None
    mods = tuple((targets or "").split(","))
    spec = next((k for k, v in ABLATION_LORA_MODULES.items() if v == mods), targets)
    return f"{get_method(origin).label} {spec}"


def sized_run(by_n: dict[int, tuple[str, float, int]], n: int | None) -> tuple[str, float, int] | None:
    """The evaluation on the slice of size `n`, else the largest one there is (its n shows the difference)."""
    return by_n.get(n) or (by_n[max(by_n)] if by_n else None)


def transfer_runs(cat: Catalog, model: str | None) -> dict[str, list[dict]]:
    """{destination expert id: [{source_model, control, task, model}]} of the completed transfers (one
    expert can be the product of several controls when they coincide, e.g. z = 1 everywhere)."""

    _, rows = cat.query("SELECT model, task, config_json FROM runs WHERE kind = 'transfer' AND status = 'completed'"
                        " AND (? IS NULL OR model = ?) ORDER BY finished_at", [model, model])
    out: dict[str, list[dict]] = {}
    for mdl, task, cfg in rows:
        c = json.loads(cfg)
        out.setdefault(c["expert"], []).append({"model": mdl, "task": task, "source_model": c["source_model"],
                                                "control": c["control"], "mapping": c["mapping"]["kind"]})
    return out
