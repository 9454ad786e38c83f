"""Writing t2core results into the catalog, each in one transaction.

Rows are keyed by content (run ids, weights hashes, decomposition keys) and written
with INSERT OR REPLACE / delete-then-insert, so recording the same thing twice (a
rerun after a crash) never duplicates rows.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from catalog.db import Catalog
from t2core.evaluate import EvalResult
from t2core.hashing import git_sha
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
              config_hash: str = "", data_files: dict | None = None, seed: int = 0) -> None:
    """Mark a run as running (replacing a failed or interrupted attempt with the same id)."""
    cat.write(lambda con: con.execute(
        "INSERT OR REPLACE INTO runs (run_id, kind, model, weights_hash, task, task_version, split, config_hash,"
        " config_json, data_hashes, git_sha, seed, status, started_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'running',?)",
        [run_id, kind, model, weights_hash, task, task_version, split, config_hash,
         json.dumps(config or {}, sort_keys=True, default=str), json.dumps(data_files or {}, sort_keys=True),
         git_sha(), seed, _now()],
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
            " config_json, data_hashes, git_sha, seed, status, started_at, finished_at, seconds)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'completed',"
            " coalesce((SELECT started_at FROM runs WHERE run_id = ?), ?), ?, ?)",
            [res.run_id, res.kind, res.model, res.weights_hash, res.task, res.task_version, res.split,
             res.config_hash, json.dumps(res.config, sort_keys=True, default=str),
             json.dumps(res.data_files, sort_keys=True), git_sha(), res.seed, res.run_id, _now(), _now(),
             res.seconds],
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
