"""Writing t2core results into the catalog, each in one transaction.

Rows are keyed by content (run ids, weights hashes, decomposition keys) and written
with INSERT OR REPLACE / delete-then-insert, so recording the same thing twice (a
rerun after a crash) never duplicates rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone

from catalog.db import Catalog
from t2core.evaluate import EvalResult
from t2core.hashing import config_hash, git_sha
from t2core.models.registry import LoadedModel
from t2core.svd import SVDInfo


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def record_model(cat: Catalog, loaded: LoadedModel) -> None:
    cat.write(lambda con: con.execute(
        "INSERT OR IGNORE INTO models (weights_hash, alias, source, n_params) VALUES (?, ?, ?, ?)",
        [loaded.weights_hash, loaded.alias, loaded.source, loaded.n_params],
    ))


def record_decomposition(cat: Catalog, info: SVDInfo) -> bool:
    """Record an SVD artifact; returns False when it was already catalogued (nothing written)."""

    def tx(con) -> bool:
        if con.execute("SELECT count(*) FROM decompositions WHERE decomp_key = ?", [info.key]).fetchall()[0][0]:
            return False
        con.execute(
            "INSERT INTO decompositions (decomp_key, weights_hash, targets, path, n_matrices, bytes, seconds, max_error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [info.key, info.weights_hash, info.targets, str(info.path), info.n_matrices, info.bytes, info.seconds,
             info.max_error],
        )
        con.executemany(
            "INSERT OR REPLACE INTO decomposition_matrices VALUES (?, ?, ?, ?, ?)",
            [[info.key, n, info.shapes[n][0], info.shapes[n][1], e] for n, e in info.max_errors.items()],
        )
        return True

    return cat.write(tx)


def is_completed(cat: Catalog, run_id: str) -> bool:
    _, rows = cat.query("SELECT count(*) FROM runs WHERE run_id = ? AND status = 'completed'", [run_id])
    return bool(rows[0][0])


def start_run(cat: Catalog, *, run_id: str, kind: str, model: str, weights_hash: str, task: str | None = None,
              task_version: str | None = None, split: str | None = None, config: dict | None = None,
              config_hash: str = "", data_files: dict | None = None, seed: int = 0, variant: str = "base") -> None:
    """Mark a run as running (replacing a failed or interrupted attempt with the same id)."""
    cat.write(lambda con: con.execute(
        "INSERT OR REPLACE INTO runs (run_id, kind, model, weights_hash, task, task_version, split, config_hash,"
        " config_json, data_hashes, git_sha, seed, status, started_at, variant)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'running',?,?)",
        [run_id, kind, model, weights_hash, task, task_version, split, config_hash,
         json.dumps(config or {}, sort_keys=True, default=str), json.dumps(data_files or {}, sort_keys=True),
         git_sha(), seed, _now(), variant],
    ))


def fail_run(cat: Catalog, run_id: str, error: str) -> None:
    cat.write(lambda con: con.execute(
        "UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
        [error[-2000:], _now(), run_id],
    ))


def record_eval(cat: Catalog, res: EvalResult, n_records: int | None = None) -> None:
    """Store a finished evaluation: run row, metrics, per-sample rows and dataset hashes, atomically."""

    def tx(con) -> None:
        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, kind, model, weights_hash, task, task_version, split, config_hash,"
            " config_json, data_hashes, git_sha, seed, status, started_at, finished_at, seconds, variant)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'completed',"
            " coalesce((SELECT started_at FROM runs WHERE run_id = ?), ?), ?, ?, ?)",
            [res.run_id, res.kind, res.model, res.weights_hash, res.task, res.task_version, res.split,
             res.config_hash, json.dumps(res.config, sort_keys=True, default=str),
             json.dumps(res.data_files, sort_keys=True), git_sha(), res.seed, res.run_id, _now(), _now(),
             res.seconds, res.variant],
        )
        con.execute("DELETE FROM metrics WHERE run_id = ?", [res.run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)",
                        [[res.run_id, k, float(v)] for k, v in res.metrics.items()])
        con.execute("DELETE FROM samples WHERE run_id = ?", [res.run_id])
        con.executemany(
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[res.run_id, s.idx, s.sample_id, s.prompt, s.output, s.parsed, s.target, s.correct, s.detail]
             for s in res.samples],
        )
        for f, h in res.data_files.items():
            con.execute("INSERT OR IGNORE INTO datasets (task, split, file, sha256, n_records) VALUES (?,?,?,?,?)",
                        [res.task, res.split, f, h, n_records])

    cat.write(tx)


def record_svd_run(cat: Catalog, loaded: LoadedModel, info: SVDInfo, seed: int = 0) -> None:
    """An `svd` run row (id = decomposition key) so `t2 catalog runs` shows when SVD happened."""

    def tx(con) -> None:
        con.execute(
            "INSERT OR IGNORE INTO runs (run_id, kind, model, weights_hash, config_hash, config_json, git_sha, seed,"
            " status, started_at, finished_at, seconds) VALUES (?, 'svd', ?, ?, ?, ?, ?, ?, 'completed', ?, ?, ?)",
            [f"svd-{info.key}", loaded.alias, loaded.weights_hash, info.key[:16],
             json.dumps({"targets": info.targets}), git_sha(), seed, _now(), _now(), info.seconds],
        )
        con.execute("INSERT OR IGNORE INTO metrics VALUES (?, 'max_recon_error', ?)", [f"svd-{info.key}", info.max_error])

    cat.write(tx)


def _config_identity(cfg) -> tuple[dict, str, str]:
    """(config as a dict, its hash, the task's version) for a training config (RLConfig or NTPConfig)."""
    from t2core.tasks import get_task

    cfg_dict = asdict(cfg)
    return cfg_dict, config_hash(cfg_dict), get_task(cfg.task).version


def start_training(cat: Catalog, *, loaded: LoadedModel, cfg, run_id: str, data_files: dict[str, str],
                   seed: int) -> None:
    """A `running` train row for REINFORCE run `run_id` (RLConfig `cfg`), visible until `record_training`
    completes it; a killed run stays visible as running until its rerun finishes."""
    cfg_dict, chash, task_version = _config_identity(cfg)
    start_run(cat, run_id=run_id, kind="train", model=loaded.alias, weights_hash=loaded.weights_hash, task=cfg.task,
              task_version=task_version, split=cfg.train_split, config=cfg_dict,
              config_hash=chash, data_files=data_files, seed=seed, variant=f"{cfg.method}-train")


def record_training(cat: Catalog, *, res, loaded: LoadedModel, cfg, expert_id: str, expert_path: str,
                    seconds: float, seed: int) -> None:
    """A finished REINFORCE run (RLConfig `cfg`): run row, metrics, learning curve and the expert, atomically."""
    cfg_dict, chash, task_version = _config_identity(cfg)
    method = cfg.method
    svf = method == "svf"
    best = {"base_valid": res.base_valid, "best_valid": res.best_valid, "best_step": float(res.best_step),
            "steps": float(len(res.curve)),
            "final_mean_reward": res.curve[-1].mean_reward if res.curve else 0.0}

    def tx(con) -> None:
        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, kind, model, weights_hash, task, task_version, split, config_hash,"
            " config_json, data_hashes, git_sha, seed, status, started_at, finished_at, seconds, variant)"
            " VALUES (?, 'train', ?, ?, ?, ?, 'train', ?, ?, ?, ?, ?, 'completed',"
            " coalesce((SELECT started_at FROM runs WHERE run_id = ?), ?), ?, ?, ?)",
            [res.run_id, loaded.alias, loaded.weights_hash, cfg.task, task_version, chash,
             json.dumps(cfg_dict, sort_keys=True, default=str), json.dumps(res.data_files, sort_keys=True),
             git_sha(), seed, res.run_id, _now(), _now(), seconds,
             f"svf:{expert_id}" if svf else f"{method}-pg:{res.run_id}"],
        )
        con.execute("DELETE FROM metrics WHERE run_id = ?", [res.run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [[res.run_id, k, float(v)] for k, v in best.items()])
        con.execute("DELETE FROM curves WHERE run_id = ?", [res.run_id])
        con.executemany(
            "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[res.run_id, c.step, c.mean_reward, c.train_acc, c.kl, c.loss, c.grad_norm, c.valid_acc, c.wall_s,
              c.tokens] for c in res.curve],
        )
        con.execute(
            "INSERT OR REPLACE INTO experts (expert_id, weights_hash, task, method, targets, path, run_id, metrics_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [expert_id, loaded.weights_hash, cfg_dict["task"], "svf" if svf else f"{method}-pg",
             cfg_dict["svf"]["targets"] if svf else "q_proj,v_proj", expert_path, res.run_id, json.dumps(best)],
        )

    cat.write(tx)


def record_adapter(cat: Catalog, *, loaded: LoadedModel, cfg, res, seed: int) -> str:
    """A trained PEFT baseline adapter (NTPConfig `cfg`): run row (kind train), loss metrics, expert row.

    Returns the run id. A reused adapter (`res.reused`) already recorded is left as it is.
    """
    cfg_dict, chash, task_version = _config_identity(cfg)
    method, run_id = cfg.method, f"{cfg.method}-{res.adapter_id}"
    if res.reused and is_completed(cat, run_id):
        return run_id
    metrics = {"n_trainable": float(res.n_trainable), "steps": float(len(res.losses))}
    if res.losses:
        metrics.update(first_loss=res.losses[0], final_loss=res.losses[-1])

    def tx(con) -> None:
        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, kind, model, weights_hash, task, task_version, split, config_hash,"
            " config_json, data_hashes, git_sha, seed, status, started_at, finished_at, seconds, variant)"
            " VALUES (?, 'train', ?, ?, ?, ?, 'train', ?, ?, ?, ?, ?, 'completed', ?, ?, ?, ?)",
            [run_id, loaded.alias, loaded.weights_hash, cfg_dict["task"], task_version, chash,
             json.dumps(cfg_dict, sort_keys=True, default=str),
             json.dumps(res.data_files, sort_keys=True), git_sha(), seed, _now(), _now(), res.seconds,
             f"{method}:{res.adapter_id}"])
        con.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [[run_id, k, float(v)] for k, v in metrics.items()])
        con.execute(
            "INSERT OR REPLACE INTO experts (expert_id, weights_hash, task, method, targets, path, run_id, metrics_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [res.adapter_id, loaded.weights_hash, cfg_dict["task"], method, ",".join(cfg_dict["target_modules"]),
             str(res.path), run_id, json.dumps(metrics)])

    cat.write(tx)
    return run_id
