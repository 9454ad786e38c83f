"""t2's MATH judge (kind `math`): the last box, else the last stated answer, equal to the gold as a
value or an expression (rules/mathverify.py, run sandboxed; docs/scoring.md)."""

from __future__ import annotations

from t2core.scoring.base import Gold, Score, register_judge
from t2core.scoring.isolated import judge_isolated


def judge_math(outputs: list[str], golds: list[Gold]) -> list[Score]:
    return judge_isolated("mathverify", outputs, golds)


register_judge("t2", "math", judge_math, source="t2core/scoring/rules/mathverify.py (math-verify, sandboxed)")
