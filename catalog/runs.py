"""The `runs` table: one row per run, written by one statement, and what the executor reads back.

A run is `running` while it runs (a killed process leaves it so, and its rerun replaces it), `failed`
with its error, or `completed` with everything it produced (`catalog/records.py`, in the same
transaction as the row). Rows are keyed by content (run ids) and written with INSERT OR REPLACE.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from catalog.db import Catalog
from t2core import threads
from t2core.hashing import git_sha
from t2ops.operation import Recorded
from t2ops.records import RunRow


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def upsert_run(con, row: RunRow, status: str, seconds: float | None = None, error: str | None = None) -> None:
    """The one statement that writes a run row (started_at kept from the first attempt's row)."""
    v = row.variant
    finished = now() if status != "running" else None
    con.execute(
        "INSERT OR REPLACE INTO runs (run_id, kind, model, weights_hash, task, task_version, split, config_hash,"
        " config_json, data_hashes, git_sha, seed, status, error, started_at, finished_at, seconds, variant, method,"
        " expert_ids, alphas, strategy, threads) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
        " coalesce((SELECT started_at FROM runs WHERE run_id = ? AND ? <> 'running'), ?),?,?,?,?,?,?,?,?)",
        [row.run_id, row.kind, row.model, row.weights_hash, row.task, row.task_version, row.split, row.config_hash,
         json.dumps(row.config, sort_keys=True, default=str), json.dumps(row.data_files, sort_keys=True), git_sha(),
         row.seed, status, error, row.run_id, status, now(), finished, seconds, v.name, v.method,
         list(v.expert_ids), list(v.alphas), row.strategy, threads.current()],
    )


def start_run(cat: Catalog, row: RunRow) -> None:
    """Mark a run as running (replacing a failed or interrupted attempt with the same id)."""
    cat.write(lambda con: upsert_run(con, row, "running"))


def fail_run(cat: Catalog, run_id: str, error: str) -> None:
    cat.write(lambda con: con.execute(
        "UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
        [error[-2000:], now(), run_id],
    ))


def is_completed(cat: Catalog, run_id: str) -> bool:
    _, rows = cat.query("SELECT count(*) FROM runs WHERE run_id = ? AND status = 'completed'", [run_id])
    return bool(rows[0][0])


def metric(cat: Catalog, run_id: str, name: str) -> float | None:
    _, rows = cat.query("SELECT value FROM metrics WHERE run_id = ? AND name = ?", [run_id, name])
    return rows[0][0] if rows else None


def metrics(cat: Catalog, run_id: str) -> dict[str, float]:
    _, rows = cat.query("SELECT name, value FROM metrics WHERE run_id = ?", [run_id])
    return dict(rows)


def recorded(cat: Catalog, run_id: str) -> Recorded | None:
    """What the catalog holds of completed run `run_id` (None when it is not completed), in one read."""

    def read(con) -> Recorded | None:
        row = con.execute("SELECT config_json FROM runs WHERE run_id = ? AND status = 'completed'",
                          [run_id]).fetchall()
        if not row:
            return None
        m = dict(con.execute("SELECT name, value FROM metrics WHERE run_id = ?", [run_id]).fetchall())
        e = con.execute("SELECT expert_id, path FROM experts WHERE run_id = ? ORDER BY expert_id",
                        [run_id]).fetchall()
        return Recorded(run_id, json.loads(row[0][0]), m, e[0] if e else None)

    return cat.read(read)
