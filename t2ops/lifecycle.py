"""The recorded lifecycle every operation shares: mark running → run → record, or mark failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from catalog import Catalog
from catalog import records as rec
from catalog.records import RunRow

R = TypeVar("R")


def recorded(cat: Catalog, row: RunRow, body: Callable[[], R], record: Callable[[R], None]) -> R:
    """Run `body` as run `row`: `running` while it runs (a killed process leaves it so, and its rerun
    replaces it), `failed` with the error if it raises (interrupts included), else `record(result)`."""
    rec.start_run(cat, row)
    try:
        out = body()
    except BaseException as e:
        rec.fail_run(cat, row.run_id, f"{type(e).__name__}: {e}")
        raise
    record(out)
    return out
