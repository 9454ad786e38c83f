"""The released GSM8K judge (kind `number`), ported: the last run of digits in the whole output.

Source: SakanaAI/self-adaptive-llms@03a41aed1cfc57276e72ad5a42845a04b356db1e,
evaluation/fishfarm/fishfarm/tasks/language_restricted_math.py:32-37 (`extract_answer_number`) and
:76-90 (`correct=sample.answer == prediction`), with the gold made by tasks/gsm8k.py:64-66
(`int(extract_answer_number(answer))`). No language check: the released GSM8K task builds
`LanguageRestrictedMathTask(..., languages=[])` (tasks/gsm8k.py:74-80), so the fastText language
identification (language_restricted_math.py:50-54,79-82,99-102) never runs and `acc` is `correct`.

Defects kept on purpose (docs/scoring.md counts what they change on the shipped golds):
- the number regex `\\d*\\.?\\d+` has no comma and no sign: '276,000' reads 0 ('000', the last
  match), '-10' reads 10, '1e5' reads 5, '3/4' reads 4; the same rule makes the gold, so a gold
  changed by it is matched only by an answer the same rule changes alike;
- the last number of the whole output wins, answer marker or not ('The answer is 16. Check: 4').
The gold is `int()` of its float, so '7.5' as a gold is 7. The gold is given as the released code
saw it, the dataset's answer text ('276,000'; `GSM8K.gold` in t2core/tasks/gsm8k.py), so the comma
defect shows on the 16 test golds it changes.
"""

from __future__ import annotations

import re

from t2core.scoring.base import Gold, Score, register_judge

SOURCE = ("SakanaAI/self-adaptive-llms@03a41aed evaluation/fishfarm/fishfarm/tasks/"
          "language_restricted_math.py:32-37,76-90; tasks/gsm8k.py:64-66")


def extract_answer_number(completion: str) -> float | None:
    """language_restricted_math.py:32-37, verbatim (the `.replace(",", "")` is dead: the regex
    never matches a comma). Defects kept: no sign, no thousands separator, the last match wins."""
    matches = re.findall(r"\d*\.?\d+", completion)
    if not matches:
        return None
    text = matches[-1]
    return float(text.replace(",", ""))


def released_gold(answer: str) -> int | None:
    """tasks/gsm8k.py:64-66: the gold is `int()` of `extract_answer_number` of the answer text, so
    the gold suffers the same defects as the prediction (and a decimal gold is truncated)."""
    value = extract_answer_number(answer)
    return int(value) if value is not None else None


def judge_released_number(outputs: list[str], golds: list[Gold]) -> list[Score]:
    """`correct = sample.answer == prediction` (language_restricted_math.py:78,90): an int gold
    against a float prediction, exact. `parsed` is `str(prediction)` ('16.0'). Where the released
    code would raise (a gold whose digits overflow a float: `int(inf)`), the item is not correct
    and its detail says so, rather than aborting the batch as the released code would."""
    out = []
    for text, gold in zip(outputs, golds, strict=True):
        prediction = extract_answer_number(text)
        parsed = None if prediction is None else str(prediction)
        try:
            answer = released_gold(gold.answer)
        except (OverflowError, ValueError) as e:
            out.append(Score(parsed, False, f"the released code raises {type(e).__name__} on this gold"))
            continue
        detail = "" if parsed is not None else "no digits in the output"
        out.append(Score(parsed, answer == prediction, detail))
    return out


register_judge("released", "number", judge_released_number, source=SOURCE)
