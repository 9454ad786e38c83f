"""Compare two catalogs run by run, item by item: the same pipeline at two precisions (issue 19).

Each completed evaluation of catalog A is paired with the evaluation of catalog B that asked the same
question of the same kind of model: the task, split and items, what was applied (base, svf, lora, ...)
and how it was chosen (the strategy, and a few-shot search's number of shots). Expert and run ids differ
between the two (the dtype is part of every id), so they are not what pairs them. For each pair it
prints both accuracies, the items only A / only B got right, and the exact McNemar p on the same
items, with the dtype each side recorded.

    python bench/paired_runs.py A/catalog.duckdb B/catalog.duckdb [--md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _runs(path: str) -> dict[tuple, dict]:
    import duckdb

    con = duckdb.connect(path, read_only=True)
    try:
        rows = con.execute(
            "SELECT run_id, task, split, method, strategy, config_json FROM runs "
            "WHERE kind = 'eval' AND status = 'completed'").fetchall()
        configs = {r[0]: json.loads(r[1] or "{}") for r in con.execute("SELECT run_id, config_json FROM runs").fetchall()}
        out: dict[tuple, dict] = {}
        for run_id, task, split, method, strategy, cfg_json in rows:
            cfg = json.loads(cfg_json or "{}")
            samples = dict(con.execute("SELECT sample_id, correct FROM samples WHERE run_id = ?", [run_id]).fetchall())
            search = str(cfg.get("dispatch", "")).partition("few-shot/")[2]  # a few-shot run names its search
            key = (task, split, len(samples), method or "base", strategy or "", _shots(configs.get(search, cfg)))
            if key in out:
                raise SystemExit(f"{path}: two evaluations pair as {key}; they cannot be told apart")
            out[key] = {"samples": samples, "dtype": _dtype(cfg)}
        return out
    finally:
        con.close()


def _shots(cfg: dict) -> int | None:
    """A few-shot search's number of shots, where the run's config names one (full and light searches)."""
    found = [v for k, v in _walk(cfg) if k == "shots" and isinstance(v, int)]
    return found[0] if found else None


def _dtype(cfg: dict) -> str:
    found = [v for k, v in _walk(cfg) if k == "dtype" and isinstance(v, str)]
    return found[0] if found else "?"


def _walk(d, key=None):
    if isinstance(d, dict):
        for k, v in d.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(d, list):
        for v in d:
            yield from _walk(v, key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--md", action="store_true", help="a Markdown table")
    args = ap.parse_args()
    from catalog.reports.stats import mcnemar_p

    a, b = _runs(args.a), _runs(args.b)
    head = ["task", "split", "n", "applied", "strategy", "shots", "A dtype", "A acc", "B dtype", "B acc",
            "only A", "only B", "McNemar p"]
    rows = []
    for key in sorted(set(a) & set(b), key=str):
        ra, rb = a[key], b[key]
        common = sorted(set(ra["samples"]) & set(rb["samples"]))
        if not common:
            continue
        only_a = sum(1 for s in common if ra["samples"][s] and not rb["samples"][s])
        only_b = sum(1 for s in common if rb["samples"][s] and not ra["samples"][s])
        acc_a = sum(bool(ra["samples"][s]) for s in common) / len(common)
        acc_b = sum(bool(rb["samples"][s]) for s in common) / len(common)
        rows.append([key[0], key[1], str(len(common)), key[3], key[4] or "-", str(key[5] or "-"), ra["dtype"],
                     f"{acc_a:.3f}", rb["dtype"], f"{acc_b:.3f}", str(only_a), str(only_b),
                     f"{mcnemar_p(only_a, only_b):.3g}"])
    unpaired = sorted(set(a) ^ set(b), key=str)
    if args.md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if unpaired:
        print(f"\n{len(unpaired)} evaluation(s) without a partner: " + "; ".join(map(str, unpaired)))


if __name__ == "__main__":
    main()
