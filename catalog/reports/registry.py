"""The report registry: every paper table and figure the catalog can render, under its paper number.

A report is one module that defines its function and registers it here (`register_report`); the CLI
(`t2 report --table N / --figure N`) finds it by kind and number and never lists them itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from t2core.registry import Registry

KINDS = ("table", "figure")


@dataclass(frozen=True)
class Report:
    kind: str  # "table" | "figure"
    number: int  # the paper's number
    # table: render(cat, model, **opts) -> Table; figure: render(cat, out, model, **opts) -> Path
    render: Callable
    takes_shots: bool = False  # the profile's few-shot count says which search the report shows


_REPORTS: Registry[Report] = Registry("report")


def register_report(kind: str, number: int, render: Callable, takes_shots: bool = False) -> Report:
    if kind not in KINDS:
        raise ValueError(f"report kind {kind!r} is not one of {KINDS}")
    return _REPORTS.register(f"{kind} {number}", Report(kind, number, render, takes_shots))


def report_numbers(kind: str) -> list[int]:
    return sorted(int(n.split()[1]) for n in _REPORTS.names() if n.split()[0] == kind)


def find_report(kind: str, number: int | None) -> Report | None:
    key = f"{kind} {number}"
    return _REPORTS.get(key) if number is not None and key in _REPORTS else None
