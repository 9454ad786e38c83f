"""Failures of the catalog file itself, as one line each (issue 36): not writable, full, corrupt, not a
DuckDB database, written by a newer DuckDB or a newer t2, or held by another process."""

from __future__ import annotations

import re
from pathlib import Path

from t2core.errors import T2Error


class CatalogStorageError(T2Error):
    """The catalog file cannot be used as it is: not writable, full, corrupt, not a catalog, or written by a
    newer t2 or DuckDB. One line naming the file, why, and what to do (issue 36); nothing is written."""


def storage_error(path: Path, e: Exception) -> CatalogStorageError | None:
    """The one-line error for a DuckDB failure that is about the file, not the query (None: it is not)."""
    msg = str(e)
    low = msg.lower()
    if "not a valid duckdb database file" in low:
        why, fix = "is not a DuckDB database", "move it aside or set T2_CATALOG to another file; t2 starts a new catalog"
    elif "corrupt database file" in low or "checksum" in low:
        why, fix = ("is corrupt (" + msg.split("\n")[0][:120] + ")",
                    "restore it from a backup, or move it aside and rerun: the artifacts are kept and stages redo "
                    "only their records")
    elif "version number" in low and ("can only read" in low or "newer" in low):
        why, fix = "was written by a newer DuckDB than this one", "upgrade duckdb (pip install -U duckdb) or use that t2"
    elif "read-only file system" in low or "permission denied" in low:
        why, fix = "cannot be written (read-only file system or no permission)", (
            "point T2_HOME (or T2_CATALOG) at a writable directory; reads still work from a read-only catalog")
    elif "no space left" in low or "disk quota" in low:
        why, fix = "cannot grow: the disk is full", "free space on that disk or point T2_HOME at another one"
    else:
        return None
    return CatalogStorageError(f"catalog {path} {why}; {fix}.")


def unwritable(e: Exception) -> bool:
    low = str(e).lower()
    return "read-only file system" in low or "permission denied" in low


def holder(e: Exception) -> str:
    """Who holds the lock, where DuckDB says it ('Conflicting lock is held in <exe> (PID n)')."""
    m = re.search(r"held in (\S+) \(PID (\d+)\)", str(e))
    return f"pid {m.group(2)} ({m.group(1)})" if m else "another process"
