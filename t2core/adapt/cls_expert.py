"""Classification-expert dispatch (paper §3.3): pass 1 classifies with an SVF expert z^c applied.

z^c is an ordinary SVF expert trained by the REINFORCE loop on the `dispatch` task (questions of
the training tasks' train splits labelled with their category, `t2core/tasks/dispatch.py`), so
this strategy is the prompt strategy run on the base weights modified by z^c, with what z^c was trained
on: t2's classification prompt and the questions as the tasks put them (format instructions included),
whatever the prompt strategy's own settings. Its formulation (`cls_formulation`) is a setting of its own:
the dispatch task trains z^c in the `choice` formulation, so a profile that uses z^c as it was trained
sets `choice` (paper profile); `generate` asks a choice-trained z^c to write its answer.
"""

from __future__ import annotations

from t2core.adapt.dispatch import Decision, ExpertSet, Strategy, StrategyInputs, register_strategy
from t2core.adapt.prompt import PromptDispatch
from t2core.errors import ConfigError
from t2core.variants import Variant


@register_strategy
class ClsExpertDispatch(Strategy):
    name = "cls-expert"
    needs = ("cls-expert",)

    def __init__(self, expert: Variant, formulation: str = "choice", batch_size: int = 8, dtype: str = "float32",
                 max_new_tokens: int = 32) -> None:
        self.expert = expert  # the classification expert z^c, verified and ready to apply
        # the dispatch task's prompt and questions (t2core/tasks/dispatch.py): what z^c was trained on
        self.inner = PromptDispatch(formulation, batch_size, dtype, max_new_tokens, prompt="t2", strip_format=False)

    @staticmethod
    def spec_for(expert: str, formulation: str, max_new_tokens: int) -> str:
        """The spec with z^c named `expert` (its variant name), before the strategy is built."""
        return f"cls-expert/{expert}/{formulation}/{max_new_tokens}"

    @property
    def spec(self) -> str:
        return self.spec_for(self.expert.name, self.inner.formulation, self.inner.gen.max_new_tokens)

    @classmethod
    def spec_of(cls, inputs: StrategyInputs) -> str:
        return cls.spec_for(inputs.cls_name, inputs.cls_formulation or inputs.formulation, inputs.max_new_tokens)

    @classmethod
    def build(cls, inputs: StrategyInputs) -> ClsExpertDispatch:
        if inputs.cls_variant is None:
            raise ConfigError("strategy cls-expert needs the classification expert (--cls-expert svf:<id>); train "
                              "it with `t2 train --task dispatch`.")
        return cls(inputs.cls_variant, inputs.cls_formulation or inputs.formulation, inputs.batch_size, inputs.dtype,
                   inputs.max_new_tokens)

    def decide(self, sampler, questions: list[str], experts: ExpertSet, **sampler_kw) -> list[Decision]:
        ctx, kw = self.expert.using(sampler)
        with ctx:
            return self.inner.decide(sampler, questions, experts, **{**sampler_kw, **kw})
