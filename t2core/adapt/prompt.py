"""Prompt dispatch (paper §3.3, Figure 3): the base model classifies each question itself.

Pass 1 asks the model, with the base weights, to sort the question into code, math, reasoning or
other, following one guideline per category, and to answer `\\boxed{category}`. As in the
official code, the instructions are the system message and the question the user message.
Two formulations:
- `generate` (the paper's): the model writes its answer; the last `\\boxed{...}` is parsed, and
  anything that is not a category is "other", which keeps the base weights.
- `choice`: a small model may not follow the format, so the four answers
  "Category: \\boxed{<c>}" are scored by likelihood after the same prompt and the most likely is
  taken (the same sampler `choose` the cloze tasks use).
"""

from __future__ import annotations

import re

from t2core.adapt.dispatch import CATEGORIES, Decision, ExpertSet, Strategy, register_strategy
from t2core.errors import ConfigError
from t2core.sampling.base import GenerationConfig

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
FORMULATIONS = ("generate", "choice")
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


@register_strategy
class PromptDispatch(Strategy):
    name = "prompt"

    def __init__(self, formulation: str = "generate", batch_size: int = 8, dtype: str = "float32",
                 max_new_tokens: int = 32) -> None:
        if formulation not in FORMULATIONS:
            raise ConfigError(f"prompt dispatch formulation {formulation!r} must be one of {', '.join(FORMULATIONS)}.")
        self.formulation = formulation
        # greedy, as the paper's evaluation; 32 tokens leave room for a short preamble before the box
        self.gen = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype)

    @staticmethod
    def spec_for(formulation: str, max_new_tokens: int) -> str:
        """The spec of a prompt dispatch with these settings (plans name runs with it before building one)."""
        return f"prompt/{formulation}/{max_new_tokens}"

    @property
    def spec(self) -> str:
        return self.spec_for(self.formulation, self.gen.max_new_tokens)

    def decide(self, sampler, questions: list[str], experts: ExpertSet, **sampler_kw) -> list[Decision]:
        convs = [classification_messages(q) for q in questions]
        if self.formulation == "generate":
            outs = sampler.generate(convs, self.gen, **sampler_kw)
            return [experts.decide(parse_category(o.text), o.text) for o in outs]
        options = tuple(category_answer(c) for c in CATEGORIES)
        outs = sampler.choose(convs, [options] * len(convs), self.gen, **sampler_kw)
        return [experts.decide(CATEGORIES[o.choice], o.text) for o in outs]
