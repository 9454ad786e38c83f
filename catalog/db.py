"""DuckDB access with short-lived connections, retries and transactions.

DuckDB lets one process hold a database file read-write, and refuses even read-only
opens from other processes meanwhile. Concurrent Prefect tasks (threads or processes)
and the CLI therefore each open the file only for one transaction, then close it; an
open that meets the lock, or a transaction that meets a write conflict, is retried
with jittered backoff until `timeout_s`. Writes are all-or-nothing (BEGIN/COMMIT).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb

from catalog.migrate import migrate
from catalog.storage import holder, storage_error, unwritable
from t2core.errors import T2Error
from t2core.paths import t2_home

T = TypeVar("T")
_SCHEMA = resources.files("catalog").joinpath("schema.sql").read_text()


class CatalogBusyError(T2Error):
    """The catalog stayed locked by another process for longer than the timeout."""


def default_path() -> Path:
    return Path(os.environ.get("T2_CATALOG") or t2_home() / "catalog.duckdb")


def _retryable(e: Exception) -> bool:
    """A write conflict (`TransactionException`) or the file lock another process holds (an
    `IOException` that says so); any other error is the caller's and is raised at once."""
    msg = str(e).lower()
    return isinstance(e, duckdb.TransactionException) or (
        isinstance(e, duckdb.IOException) and ("could not set lock" in msg or ("database" in msg and "locked" in msg)))


class Catalog:
    """Handle on the catalog file; every method opens and closes its own connection."""

    def __init__(self, path: str | Path | None = None, timeout_s: float = 120.0) -> None:
        self.path = Path(path) if path else default_path()
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _connect(self, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error as e:
            if write or not unwritable(e) or not self.path.exists():
                raise
            # a catalog on read-only storage (a snapshot of results): read it as it is, with no schema update
            con = duckdb.connect(str(self.path), read_only=True)
            try:
                yield con
            finally:
                con.close()
            return
        try:
            con.execute(_SCHEMA)  # idempotent; cheap next to a model step
            migrate(con, self.path)  # data migrations, once per catalog (a no-op read afterwards)
            yield con
        finally:
            con.close()

    def _with_retry(self, fn: Callable[[duckdb.DuckDBPyConnection], T], write: bool) -> T:
        deadline = time.monotonic() + self.timeout_s
        delay = 0.02
        while True:
            try:
                with self._connect(write) as con:
                    if not write:
                        return fn(con)
                    con.execute("BEGIN TRANSACTION")
                    try:
                        out = fn(con)
                        con.execute("COMMIT")
                        return out
                    except BaseException:
                        with contextlib.suppress(duckdb.Error):
                            con.execute("ROLLBACK")
                        raise
            except duckdb.Error as e:
                if not _retryable(e):
                    raise (storage_error(self.path, e) or e) from e
                if time.monotonic() > deadline:
                    raise CatalogBusyError(
                        f"catalog {self.path} stayed locked for {self.timeout_s:.0f}s: {holder(e)} holds it open; "
                        "wait for it to finish, or set T2_CATALOG to another file."
                    ) from e
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `fn(con)` in one transaction (retried as a whole on lock/conflict)."""
        return self._with_retry(fn, write=True)

    def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return self._with_retry(fn, write=False)

    def query(self, sql: str, params: list | tuple | None = None) -> tuple[list[str], list[tuple]]:
        """Column names and all rows (fully fetched before the connection closes)."""

        def run(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
            cur = con.execute(sql, params or [])
            rows = cur.fetchall()
            cols = [d[0] for d in cur.description] if cur.description else []
            return cols, rows

        return self.read(run)
