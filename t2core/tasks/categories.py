"""The dispatch categories and the classification prompt of pass 1 (paper §3.3, Figure 3).

They belong to the task layer: a task declares its category (`Task.category`), the dispatch task
(`t2core/tasks/dispatch.py`) trains the classification expert on this prompt, and the strategies
above (`t2core/adapt/`) ask it.
"""

from __future__ import annotations

import re

#: The categories of pass 1 (paper Figure 3); "other" answers with the base weights.
CATEGORIES = ("code", "math", "reasoning", "other")

SYSTEM = (
    "Read the question and decide which kind of skill answering it needs. The categories are:\n"
    "- code: writing or fixing a program, a function or an algorithm; mentions code, data structures or a "
    "programming language.\n"
    "- math: computing a number or solving an equation; word problems with quantities, algebra, geometry, "
    "probability.\n"
    "- reasoning: using scientific or everyday knowledge and logic to pick or justify an answer, as in "
    "multiple-choice science questions.\n"
    "- other: anything that fits none of these.\n"
    "If several apply, choose the one the question mostly needs. End with the category in a box, "
    "for example: Category: \\boxed{math}"
)
_BOXED = re.compile(r"\\boxed\{\s*([A-Za-z]+)\s*\}")


def parse_category(text: str) -> str:
    """The category of the last `\\boxed{...}` in `text` ("others" counts as "other"); else "other"."""
    found = _BOXED.findall(text)
    word = found[-1].lower() if found else ""
    word = "other" if word == "others" else word
    return word if word in CATEGORIES else "other"


def category_answer(category: str) -> str:
    """The answer the choice formulation scores for `category` (the format the prompt asks for)."""
    return f"Category: \\boxed{{{category}}}"


def classification_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
