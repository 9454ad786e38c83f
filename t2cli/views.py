"""How runs and experts read on screen (`t2 catalog ls runs|experts`): what produced each result in words, ids
no longer than it takes to tell them apart, the reason a run failed. The catalog keeps the full values."""

from __future__ import annotations

import json

#: ids on screen are at least this long (what `t2 compare`, `t2 eval --expert` accept as a prefix)
MIN_ID = 8


def short_ids(ids: list[str], least: int = MIN_ID) -> dict[str, str]:
    """Each id cut to the shortest length (>= `least` characters after any `method:`) at which the ids on
    screen are still all different."""
    distinct = sorted({i for i in ids if i})
    n = least
    while n < max((len(i) for i in distinct), default=0):
        cut = {_cut(i, n) for i in distinct}
        if len(cut) == len(distinct):
            break
        n += 2
    return {i: _cut(i, n) for i in distinct}


def _cut(ident: str, n: int) -> str:
    method, sep, rest = ident.rpartition(":")
    return f"{method}{sep}{rest[:n]}"


def produced_by(kind: str, method: str | None, strategy: str | None, expert_ids: list[str] | None,
                variant: str | None, short: dict[str, str]) -> str:
    """What produced a run's result: base, an expert or adapter, a two-pass strategy over its experts."""
    ids = [short.get(e, e) for e in (expert_ids or [])]
    if strategy:
        return f"{strategy} ({len(ids)} expert{'s' if len(ids) != 1 else ''})"
    if kind != "train" and (method in (None, "base") or not ids):
        return "base" if method in (None, "base") else (variant or method)
    if ids:  # a training run names what it made, an import what it brought; any other run, what it applied
        shown = ", ".join(i if ":" in i else f"{method}:{i}" for i in ids[:2]) + (" ..." if len(ids) > 2 else "")
        return {"train": f"made {shown}", "import": f"imported {shown}"}.get(kind, shown)
    return method or variant or ""


def status_text(status: str, error: str | None, width: int = 60) -> str:
    """completed / running, or failed with the first line of its reason (a signal, an error)."""
    if status != "failed":
        return status
    reason = (error or "no reason recorded").strip().splitlines()[0] if (error or "").strip() else "no reason recorded"
    return f"failed: {reason[:width]}" + ("..." if len(reason) > width else "")


def expert_summary(origin: str | None, metrics_json: str | None) -> str:
    """How an expert came out, in words: validation before and after (RL), loss (NTP), fitness (few-shot)."""
    try:
        m = json.loads(metrics_json or "{}")
    except ValueError:
        return "unreadable metrics"
    if "best_valid" in m:
        return (f"valid {m.get('base_valid', float('nan')):.3f} -> {m['best_valid']:.3f} "
                f"(best step {int(m.get('best_step', 0))} of {int(m.get('steps', 0))})")
    if "final_loss" in m:
        return f"loss {m.get('first_loss', float('nan')):.3f} -> {m['final_loss']:.3f} ({int(m.get('steps', 0))} steps)"
    if "fitness_accuracy" in m:
        return f"shots acc {m['fitness_accuracy']:.3f} ({int(m.get('generations', 0))} generations)"
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(m.items())[:4])


def one_model(cols: list[str], rows: list[tuple], title: str) -> tuple[str, list[str], list[tuple]]:
    """A listing whose rows are all of one model names it in the title (`{of}`) instead of in every row."""
    j = cols.index("model")
    models = {r[j] for r in rows}
    if len(models) != 1:
        return title.format(of=""), cols, rows
    drop = [c for i, c in enumerate(cols) if i != j]
    return title.format(of=f" of {models.pop()}"), drop, [tuple(v for i, v in enumerate(r) if i != j) for r in rows]
