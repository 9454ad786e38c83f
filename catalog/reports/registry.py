"""The report registry: every paper table and figure the catalog can render, under its paper number,
and a user's own reports under a number or a name.

A report is one module that defines its function and registers it here (`register_report`); the CLI
(`t2 report --table N|NAME / --figure N|NAME`) finds it by kind and key and never lists them itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from t2core.registry import Registry

KINDS = ("table", "figure")


@dataclass(frozen=True)
class Report:
    kind: str  # "table" | "figure"
    key: str  # the paper's number ("2"), or a name ("by-task") for a report that is no paper's
    # table: render(cat, model, **opts) -> Table; figure: render(cat, out, model, **opts) -> Path
    render: Callable
    takes_shots: bool = False  # the profile's few-shot count says which search the report shows

    @property
    def number(self) -> int | None:
        return int(self.key) if self.key.isdigit() else None


_REPORTS: Registry[Report] = Registry("report")


def register_report(kind: str, key: int | str, render: Callable, takes_shots: bool = False) -> Report:
    """`key`: the paper's table or figure number, or a name (letters, digits, '-', '_'; not only digits)."""
    from t2core.errors import ConfigError

    if kind not in KINDS:
        raise ConfigError(f"report kind {kind!r} is not one of {', '.join(KINDS)}.")
    key = str(key)
    if not key or not all(c.isalnum() or c in "-_" for c in key):
        raise ConfigError(f"report key {key!r} must be a number or a name of letters, digits, '-' and '_'.")
    return _REPORTS.register(f"{kind} {key}", Report(kind, key, render, takes_shots))


def report_keys(kind: str) -> list[str]:
    """The keys of `kind`'s reports: the numbers in order, then the names."""
    keys = [n.split(" ", 1)[1] for n in _REPORTS.names() if n.split(" ", 1)[0] == kind]
    return sorted(keys, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))


def report_numbers(kind: str) -> list[int]:
    return [int(k) for k in report_keys(kind) if k.isdigit()]


def find_report(kind: str, key: int | str | None) -> Report | None:
    name = f"{kind} {key}"
    return _REPORTS.get(name) if key is not None and name in _REPORTS else None
