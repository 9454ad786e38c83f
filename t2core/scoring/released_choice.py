"""The released ARC judge (kind `choice`), ported: letters A-J only, and a seeded "random" guess.

Source: SakanaAI/self-adaptive-llms@03a41aed1cfc57276e72ad5a42845a04b356db1e,
evaluation/fishfarm/fishfarm/tasks/ai2_arc.py:10-33 (`extract_answer`, `extract_again`,
`extract_final`), :36-47 (`is_correct`) and :96-106 (`evaluate`); the gold is the dataset's raw
`answerKey` and the options its choice texts (tasks/arc.py:54-68).

Defects kept on purpose:
- only letters A-J are ever extracted, so an item labelled 1-5 can never be scored correct
  (22 of 1,172 ARC-Challenge and 97 of 2,376 ARC-Easy test items);
- the first 'answer is X' wins (a self-correction after it does not count); failing that, the
  first line holding 'answer: X' (its last such X); failing that, the last standalone capital
  A-J anywhere, so the article 'A', the pronoun 'I' and option letters echoed in the reasoning
  count ('the answer is Always' reads A: the first pattern has no word boundary);
- with nothing extracted, `random.seed(42); random.randint(0, len(options) - 1)`: always the same
  guess, A for 2, 4 or 5 options and C for 3, credited when it equals the gold.
"""

from __future__ import annotations

import random
import re

from t2core.scoring.base import Gold, Score, register_judge

SOURCE = "SakanaAI/self-adaptive-llms@03a41aed evaluation/fishfarm/fishfarm/tasks/ai2_arc.py:10-47,96-106"


def extract_answer(text: str) -> str | None:
    """ai2_arc.py:10-16, verbatim: the first 'answer is (X)' / 'answer is X' (case-sensitive)."""
    match = re.search(r"answer is \(?([A-J])\)?", text)
    if match:
        return match.group(1)
    return extract_again(text)


def extract_again(text: str) -> str | None:
    """ai2_arc.py:19-24, verbatim: '.*' stops at a newline, so the first line with an
    '[aA]nswer:' followed by a letter (after any whitespace, newlines too) wins, its last such X."""
    match = re.search(r".*[aA]nswer:\s*([A-J])", text)
    if match:
        return match.group(1)
    return extract_final(text)


def extract_final(text: str) -> str | None:
    """ai2_arc.py:27-33, verbatim: the last standalone capital A-J in the whole text."""
    match = re.search(r"\b[A-J]\b(?!.*\b[A-J]\b)", text, re.DOTALL)
    if match:
        return match.group(0)
    return None


def is_correct(pred: str | None, answer: str, options: tuple[str, ...]) -> bool:
    """ai2_arc.py:36-47. With no prediction the released code reseeds the process's global RNG
    (`random.seed(42)`) and draws `randint(0, len(options) - 1)`; `random.Random(42)` draws the
    same number without resetting the caller's RNG. Raises as the released code does with no
    options (ValueError) or more than five (IndexError)."""
    if not pred:
        x = random.Random(42).randint(0, len(options) - 1)
        return ["A", "B", "C", "D", "E"][x] == answer
    return pred == answer


def judge_released_choice(outputs: list[str], golds: list[Gold]) -> list[Score]:
    """`prediction = extract_answer(output)`, `correct = is_correct(prediction, answer, options)`
    (ai2_arc.py:98,106); `parsed` is the prediction (None when the seeded guess decided). Where the
    released code would raise, the item is not correct and its detail says so."""
    out = []
    for text, gold in zip(outputs, golds, strict=True):
        pred = extract_answer(text)
        options = gold.choices or gold.labels
        try:
            ok = is_correct(pred, gold.answer, options)
        except (ValueError, IndexError) as e:
            out.append(Score(pred, False, f"the released code raises {type(e).__name__} here"))
            continue
        detail = "" if pred else f"no letter extracted: the released seeded guess over {len(options)} options"
        out.append(Score(pred, ok, detail))
    return out


register_judge("released", "choice", judge_released_choice, source=SOURCE)
