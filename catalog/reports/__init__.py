"""Paper tables and figures computed from the catalog: one module per table or figure, each
registered under its paper number (`registry.py`; a user's own report under a number or a name). Only runs that exist are shown; nothing is
filled in. Shared queries live in `common.py`, the paired test in `stats.py`, the few-shot searches
in `searches.py`, the transfer cells in `transfers.py`.
"""

from catalog.reports.registry import Report, find_report, register_report, report_keys, report_numbers
from t2core.registry import import_submodules

import_submodules(__name__, __path__)  # every module registers its report: a new one is one file

__all__ = ["Report", "find_report", "register_report", "report_keys", "report_numbers"]
