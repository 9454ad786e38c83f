"""What the catalog knows of a model's experts, for the flows and commands that pick them (transfer) and the
packages that carry them out (export)."""

from __future__ import annotations

from catalog.db import Catalog
from t2core.errors import ConfigError


def source_experts(cat: Catalog, model: str, tasks: tuple[str, ...] | None = None, targets: str = "mlp") -> list[str]:
    """The SVF experts `model` trained itself by REINFORCE on `targets` (one per task; no few-shot
    mixtures, no transferred experts, no SVF-NTP, no classification expert), from the catalog; a clear
    error when there are none."""
    _, rows = cat.query(  # NTP runs' configs (NTPConfig) carry svf_targets; REINFORCE runs' (RLConfig) do not
        "SELECT e.expert_id, e.task FROM experts e JOIN runs r ON r.run_id = e.run_id JOIN models m"
        " ON m.weights_hash = e.weights_hash WHERE m.alias = ? AND e.method = 'svf' AND r.kind = 'train'"
        " AND r.status = 'completed' AND e.task <> 'dispatch' AND e.targets = ?"
        " AND json_extract_string(r.config_json, '$.svf_targets') IS NULL ORDER BY r.finished_at", [model, targets])
    by_task: dict[str, list[str]] = {}
    for eid, task in rows:
        if tasks is None or task in tasks:
            by_task.setdefault(task, []).append(eid)
    if not by_task:
        want = ", ".join(tasks) if tasks else "gsm8k, mbpp, arc_easy"
        raise ConfigError(f"no experts for {model} in the catalog{' on ' + want if tasks else ''}: train them with "
                          f"`t2 train --model {model} --task <task>` ({want}), or `t2 run full-paper` with a profile "
                          f"of {model}.")
    several = {t: ids for t, ids in by_task.items() if len(set(ids)) > 1}
    if several:
        t, ids = next(iter(several.items()))
        raise ConfigError(f"{model} has {len(set(ids))} experts for {t} ({', '.join(sorted(set(ids)))}); name the ones "
                          "to transfer with --experts.")
    return [ids[0] for _, ids in sorted(by_task.items())]


def expert_record(ref, cat: Catalog | None = None) -> dict:
    """What this T2_HOME knows of the expert `ref` (an ExpertRef) beyond its header, for its package's manifest:
    the store's record of the run that wrote it and the catalog's rows (expert, run, model), where they exist.
    `t2 experts export` and the experts-api flow both write it."""
    import json

    from t2core.artifacts import ArtifactStore
    from t2core.experts import KIND, SAME_AS

    out: dict = {}
    store = ArtifactStore()
    if ref.path.resolve().parent.parent == (store.root / KIND).resolve():
        meta = store.manifest(KIND, ref.path.parent.name).meta
        out["store"] = {k: v for k, v in meta.items() if k != SAME_AS}
    cat = cat or Catalog()
    _, rows = cat.query("SELECT run_id, method, origin, targets, metrics_json FROM experts WHERE expert_id = ?",
                        [ref.id])
    if rows:
        run_id, method, origin, targets, metrics = rows[0]
        cat_rec: dict = {"expert": {"run_id": run_id, "method": method, "origin": origin, "targets": targets,
                                    "metrics": json.loads(metrics or "{}")}}
        _, runs = cat.query("SELECT kind, model, config_json, git_sha, seconds FROM runs WHERE run_id = ?", [run_id])
        if runs:
            kind, model, config, sha, seconds = runs[0]
            cat_rec["run"] = {"kind": kind, "model": model, "config": json.loads(config or "{}"), "git_sha": sha,
                              "seconds": seconds}
        out["catalog"] = cat_rec
    _, models = cat.query("SELECT alias, source, n_params FROM models WHERE weights_hash = ?",
                          [ref.header.base_weights_hash])
    if models:
        out.setdefault("catalog", {})["model"] = dict(zip(("alias", "source", "n_params"), models[0], strict=True))
    return out
