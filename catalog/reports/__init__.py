"""Paper tables and figures computed from the catalog: one module per table or figure, each
registered under its paper number (`registry.py`). Only runs that exist are shown; nothing is
filled in. Shared queries live in `common.py`, the paired test in `stats.py`, the few-shot searches
in `searches.py`, the transfer cells in `transfers.py`.
"""

from catalog.reports import (  # noqa: F401 - each module registers its report
    expert_figure,
    figure4,
    figure6,
    figure7,
    figure9,
    table1,
    table2,
    table3,
    table4,
    table5,
    table8,
    table9,
    table10,
)
from catalog.reports.registry import Report, find_report, register_report, report_numbers

__all__ = ["Report", "find_report", "register_report", "report_numbers"]
