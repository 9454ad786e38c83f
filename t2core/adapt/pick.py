"""Choosing one of several adapters on the few-shot prompts (paper Table 2's LoRA row, without test data).

The paper reports, for each unseen task, the training-task LoRA that scores best on that task's
*test* set, which selects on test data. This picks instead the way few-shot adaptation may: by
the score on the same shots the CEM search sees (the unseen task's train or valid split), ties
broken by the mean log-likelihood of the gold answers (choice tasks), then by id.
"""

from __future__ import annotations

from t2core.adapt.fewshot import fitness
from t2core.adapt.twopass import answer
from t2core.sampling.base import GenerationConfig, Sampler
from t2core.tasks.base import Dataset, Task
from t2core.variants import Variant


def shot_score(task: Task, shots: Dataset, sampler: Sampler, gen: GenerationConfig, variant: Variant
               ) -> tuple[float, float]:
    """(accuracy, mean gold log-likelihood) of `variant` on the shots: the CEM search's fitness."""
    return fitness(task, shots.samples, answer(task, shots.samples, sampler, gen, variant))


def pick_best(scores: dict[str, tuple[float, float]]) -> str:
    """The id with the best (accuracy, log-likelihood); the smallest id among exact ties."""
    return min(scores, key=lambda k: (-scores[k][0], -scores[k][1], k))
