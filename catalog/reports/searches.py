"""The few-shot CEM searches (paper §3.3) as the catalog records them, for Tables 2, 8, 10 and Figure 7."""

from __future__ import annotations

import json

from catalog.db import Catalog
from catalog.reports.common import transfer_runs


def search_runs(cat: Catalog, model: str | None, cross: bool = False) -> list[dict]:
    """Completed few-shot searches (runs of kind `adapt`): task, α, experts (with their tasks), shots.
    `cross`: only the cross-model ones (over experts transferred from another model: Table 5), else
    only the others (Tables 2, 8, 10, Figure 7)."""

    _, rows = cat.query("SELECT r.run_id, r.model, r.task, r.config_json, r.seconds FROM runs r WHERE r.kind = 'adapt'"
                        " AND r.status = 'completed' AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at",
                        [model, model])
    _, ex = cat.query("SELECT expert_id, task FROM experts")
    task_of = dict(ex)
    _, secs = cat.query("SELECT m.run_id, m.value FROM metrics m JOIN runs r USING (run_id) WHERE r.kind = 'adapt'"
                        " AND m.name = 'generations'")
    generations = dict(secs)
    moved = set(transfer_runs(cat, model))
    out = []
    for rid, mdl, task, cfg, seconds in rows:
        c = json.loads(cfg)
        if bool(moved & set(c["experts"])) != cross:
            continue
        out.append({"run_id": rid, "model": mdl, "task": task, "alpha": c["alpha"], "experts": c["experts"],
                    "expert_tasks": [task_of.get(e, e) for e in c["experts"]], "shots": len(c["shots"]),
                    "few_shot": c["few_shot"], "seconds": seconds, "generations": generations.get(rid)})
    return out


def full_searches(searches: list[dict], shots: int | None = None) -> dict[tuple[str, str], dict]:
    """(model, task) -> its "full" few-shot search: the latest one with `shots` shots (the profile's, which
    `t2 report --profile` passes), or, where there is none (or `shots` is None), the one with the most.
    Table 2 and Figure 7 show it; Table 8 shows every shot count, Table 10 the full one and fewer."""
    full: dict[tuple[str, str], dict] = {}
    for s in searches:  # ordered by finished_at
        prev = full.get((s["model"], s["task"]))
        if prev is None or (s["shots"] == shots) or (prev["shots"] != shots and s["shots"] >= prev["shots"]):
            full[(s["model"], s["task"])] = s
    return full


def search_id_of(config_json: str) -> str:
    """The few-shot search run id a two-pass evaluation's config names ("dispatch": "few-shot/<run id>")."""

    spec = json.loads(config_json).get("dispatch", "")
    return spec.partition("/")[2] if spec.startswith("few-shot/") else ""


def few_shot_evals(cat: Catalog, model: str | None) -> list[tuple]:
    """(model, task, run_id, config_json, accuracy, n) of the completed few-shot evaluations, oldest first."""
    _, rows = cat.query(
        "SELECT r.model, r.task, r.run_id, r.config_json, m.value, n.value FROM runs r"
        " JOIN metrics m ON m.run_id = r.run_id AND m.name = 'accuracy'"
        " JOIN metrics n ON n.run_id = r.run_id AND n.name = 'n'"
        " WHERE r.kind = 'eval' AND r.status = 'completed' AND r.strategy = 'few-shot'"
        " AND (? IS NULL OR r.model = ?) ORDER BY r.finished_at", [model, model])
    return rows


def shot_adapters(cat: Catalog, model: str | None) -> dict[tuple, tuple[float, int]]:
    """IA3 adapters trained on few-shot prompts (`t2 baseline --method ia3 --shots N`) and their test
    accuracy: (model, task, shots, split, seed, n) -> (accuracy, steps)."""

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
