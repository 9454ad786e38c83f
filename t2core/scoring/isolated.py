"""A judge whose rules evaluate model text runs them in the sandbox (t2core.sandbox.tool).

The rules are the modules of `rules/` (pure: standard library and the venv's packages); each
exposes `judge(output, gold) -> (parsed, correct)`.
"""

from __future__ import annotations

from pathlib import Path

from t2core.sandbox.tool import run_tool
from t2core.scoring.base import Gold, Score

RULES = Path(__file__).resolve().with_name("rules")


def judge_isolated(rules: str, outputs: list[str], golds: list[Gold], per_item_s: float = 10.0) -> list[Score]:
    """One Score per output, from `rules/<rules>.py`'s `judge` run sandboxed over the batch."""
    if not (RULES / f"{rules}.py").is_file():
        raise ValueError(f"no judging rules {rules!r} in {RULES}")
    res = run_tool(RULES, rules, [[o, g.answer] for o, g in zip(outputs, golds, strict=True)], per_item_s)
    return [Score(parsed, correct, detail) for parsed, correct, detail in res]
