"""Few-shot dispatch (paper §3.3): one decision for the whole task, the mixture CEM found.

Pass 1 happened before the evaluation: `t2core.adapt.fewshot` searched α on a few prompts of the
task's train or validation split and stored z' = Σ_k α_k z_k as an expert. Every question of the
task is then answered with it; each decision records that expert (α, the shots and the search
history are in the search's run and in the expert's header).
"""

from __future__ import annotations

from t2core.adapt.dispatch import Decision, ExpertSet, Strategy, StrategyInputs, register_strategy


@register_strategy
class FewShotDispatch(Strategy):
    name = "few-shot"
    per_question = False  # one decision for the whole task: the mixture the search found
    experts = "set"  # the search's ingredients, whatever their tasks (the mixture is what it applies)
    needs = ("search",)

    def __init__(self, search_id: str, expert_id: str) -> None:
        self.search_id, self.expert_id = search_id, expert_id  # the search's run id, the mixture it stored

    @staticmethod
    def spec_for(search_id: str) -> str:
        return f"few-shot/{search_id}"  # the search determines the mixture

    @property
    def spec(self) -> str:
        return self.spec_for(self.search_id)

    @classmethod
    def spec_of(cls, inputs: StrategyInputs) -> str:
        return cls.spec_for(inputs.search_id)

    @classmethod
    def build(cls, inputs: StrategyInputs) -> FewShotDispatch:
        return cls(inputs.search_id, inputs.search_expert)

    def decide(self, sampler, questions: list[str], experts: ExpertSet, **sampler_kw) -> list[Decision]:
        return [Decision("task", (self.expert_id,), raw=f"few-shot search {self.search_id}")] * len(questions)
