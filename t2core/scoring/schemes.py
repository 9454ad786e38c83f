"""The built-in scoring schemes (their judges are one file per kind beside this one)."""

from t2core.scoring.base import register_scheme

T2 = register_scheme("t2", "t2's scorer: the final stated answer, compared by value (docs/scoring.md)")
RELEASED = register_scheme("released", "a port of the paper's released scorers, defects included "
                                       "(SakanaAI/self-adaptive-llms fishfarm tasks; evalplus for code)")
