"""Scoring schemes and their judges (t2core.scoring.base). Importing this package registers every
built-in scheme: each module of this folder is imported, so a judge is one file with one call."""

from t2core.registry import import_submodules
from t2core.scoring import schemes  # noqa: E402,F401 - the schemes before their judges
from t2core.scoring.base import (
    DEFAULT_SCHEME,
    KINDS,
    CodeItem,
    Gold,
    Judge,
    ProgramBuilder,
    Score,
    check_scheme,
    get_judge,
    judge_source,
    register_judge,
    register_scheme,
    scheme_description,
    scheme_names,
)

import_submodules(__name__, __path__)

__all__ = ["DEFAULT_SCHEME", "KINDS", "CodeItem", "Gold", "Judge", "ProgramBuilder", "Score", "check_scheme",
           "get_judge", "judge_source", "register_judge", "register_scheme", "scheme_description", "scheme_names"]
