"""Prompt dispatch (paper §3.3, Figure 3): the base model classifies each question itself.

Pass 1 asks the model, with the base weights, to sort the question into code, math, reasoning or
other, following one guideline per category, and to answer `\\boxed{category}`. As in the
released code, the instructions are the system message and the question the user message.
Which instructions (`prompt`: t2's wording or the released code's) and what the question shows
(`strip_format`: the question without the task's format instructions, as the released code shows
it) are settings (t2core/adapt/pass1.py). Two formulations:
- `generate` (the paper's): the model writes its answer, up to `max_new_tokens`; the last
  `\\boxed{...}` is parsed, and anything that is not a category is "other", which keeps the base
  weights. The cap must let the answer reach its box (bench/pass1_cap.py measures how often it does not).
- `choice`: a small model may not follow the format, so the four answers the prompt asks for
  ("Category: \\boxed{<c>}" for t2's) are scored by likelihood after the same prompt and the most likely is
  taken (the same sampler `choose` the cloze tasks use).
"""

from __future__ import annotations

from t2core.adapt.dispatch import Decision, ExpertSet, Strategy, StrategyInputs, register_strategy
from t2core.adapt.pass1 import bare_question, check_prompt, get_prompt, messages
from t2core.errors import ConfigError
from t2core.sampling.base import GenerationConfig
from t2core.tasks.categories import CATEGORIES, parse_category

FORMULATIONS = ("generate", "choice")


@register_strategy
class PromptDispatch(Strategy):
    name = "prompt"

    def __init__(self, formulation: str = "generate", batch_size: int = 8, dtype: str = "float32",
                 max_new_tokens: int = 32, prompt: str = "t2", strip_format: bool = False) -> None:
        if formulation not in FORMULATIONS:
            raise ConfigError(f"prompt dispatch formulation {formulation!r} must be one of {', '.join(FORMULATIONS)}.")
        self.formulation, self.prompt, self.strip_format = formulation, check_prompt(prompt), strip_format
        # greedy, as the paper's evaluation
        self.gen = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype)

    @staticmethod
    def spec_for(formulation: str, max_new_tokens: int, prompt: str = "t2", strip_format: bool = False) -> str:
        """The spec of a prompt dispatch with these settings (plans name runs with it before building one); the
        settings added later appear only when they differ from t2's earlier behaviour, so earlier runs keep
        their ids."""
        return (f"prompt/{formulation}/{max_new_tokens}" + (f"/{prompt}" if prompt != "t2" else "")
                + ("/bare" if strip_format else ""))

    @classmethod
    def spec_of(cls, inputs: StrategyInputs) -> str:
        return cls.spec_for(inputs.formulation, inputs.max_new_tokens, inputs.prompt, inputs.strip_format)

    @classmethod
    def build(cls, inputs: StrategyInputs) -> PromptDispatch:
        return cls(inputs.formulation, inputs.batch_size, inputs.dtype, inputs.max_new_tokens, inputs.prompt,
                   inputs.strip_format)

    @property
    def spec(self) -> str:
        return self.spec_for(self.formulation, self.gen.max_new_tokens, self.prompt, self.strip_format)

    def questions(self, task, samples: list) -> list[str]:
        if self.strip_format:
            return [bare_question(task, s) for s in samples]
        return super().questions(task, samples)

    def decide(self, sampler, questions: list[str], experts: ExpertSet, **sampler_kw) -> list[Decision]:
        convs = [messages(q, self.prompt) for q in questions]
        if self.formulation == "generate":
            outs = sampler.generate(convs, self.gen, **sampler_kw)
            return [experts.decide(parse_category(o.text), o.text) for o in outs]
        options = tuple(get_prompt(self.prompt).answer_for(c) for c in CATEGORIES)
        outs = sampler.choose(convs, [options] * len(convs), self.gen, **sampler_kw)
        return [experts.decide(CATEGORIES[o.choice], o.text) for o in outs]
