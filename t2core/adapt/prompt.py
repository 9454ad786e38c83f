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

from t2core.adapt.dispatch import Decision, ExpertSet, Strategy, StrategyInputs, register_strategy
from t2core.errors import ConfigError
from t2core.sampling.base import GenerationConfig
from t2core.tasks.categories import CATEGORIES, category_answer, classification_messages, parse_category

FORMULATIONS = ("generate", "choice")


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

    @classmethod
    def spec_of(cls, inputs: StrategyInputs) -> str:
        return cls.spec_for(inputs.formulation, inputs.max_new_tokens)

    @classmethod
    def build(cls, inputs: StrategyInputs) -> PromptDispatch:
        return cls(inputs.formulation, inputs.batch_size, inputs.dtype, inputs.max_new_tokens)

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
