"""The released MATH judge (kind `math`), a port of the paper's released scorer, run sandboxed.

The rules are `rules/released_math.py` (SakanaAI/self-adaptive-llms@03a41aed,
evaluation/fishfarm/fishfarm/tasks/competation_math.py:13-335,366-379, defects kept: the percent
rule, intervals, `^` as XOR, `\\fbox`, the `\\sqrt` crash). They call sympy's `parse_expr`, which
`eval`s text derived from the model's output, so they never run in t2's process.
"""

from __future__ import annotations

from t2core.scoring.base import Gold, Score, register_judge

SOURCE = ("SakanaAI/self-adaptive-llms@03a41aed evaluation/fishfarm/fishfarm/tasks/competation_math.py:"
          "13-335,366-379 (rules/released_math.py, sandboxed)")


def judge_released_math(outputs: list[str], golds: list[Gold]) -> list[Score]:
    """`LatexFormatMathTask.evaluate`'s verdicts (competation_math.py:366-379), one item a call of
    `rules.released_math.judge` in the sandbox. An item on which the released code raises (and its
    whole evaluation aborts) comes back not correct, with a detail naming the exception."""
    from t2core.scoring.isolated import judge_isolated

    return judge_isolated("released_math", outputs, golds)


register_judge("released", "math", judge_released_math, source=SOURCE)
