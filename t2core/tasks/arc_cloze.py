"""ARC in the cloze formulation: the model picks an option by likelihood, options unseen.

Why this exists (measured on SmolLM2-135M-Instruct, ARC-Easy validation, 2 cores): with the
options listed and a letter asked for (`arc_easy`, the paper's protocol), the letter the
model gives hardly depends on the question: greedy accuracy is at chance (0.25-0.29), and
so is the letter it scores highest (28.8%). Asked the bare question, the same model ranks
the correct option's *text* first on 52.5% of 200 items. A small model's knowledge shows
only in the cloze formulation, which is also lm-eval-harness's default ARC protocol; the
CPU profile trains its reasoning expert on it.

The policy over the options is the model's own: π(c_j | x) ∝ Π_t π(c_j,t | x, c_j,<t),
normalised over the item's options. REINFORCE (paper Eq. 2) samples an option from it and
rewards +1 / −1, exactly as for generated answers; only the action space is the item's
options instead of all strings (t2core/training/choice.py).
Prompt: the user turn "Question: <stem>", the assistant turn "Answer: <option text>".
"""

from __future__ import annotations

from pathlib import Path

from t2core.scoring import Gold
from t2core.tasks.arc import load_arc
from t2core.tasks.base import EQUAL_SPLITS, ChoiceSample, Dataset, Task, register_task

ANSWER_PREFIX = "Answer: "


class ARCCloze(Task):
    family = "choice"
    category = "reasoning"
    output_type = "choice"
    version = "1"
    splits = ("train", "valid", "test", *EQUAL_SPLITS)
    max_new_tokens = 1  # nothing is generated; candidates are scored
    answer_kind = "cloze"

    def __init__(self, name: str, subset: str, benchmark: str) -> None:
        self.name, self.subset, self.benchmark = name, subset, benchmark

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        return load_arc(self.name, self.subset, self.check_split(split), data_dir)

    def messages(self, sample: ChoiceSample) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"Question: {sample.question}"}]

    def candidates(self, sample: ChoiceSample) -> tuple[str, ...]:
        return tuple(ANSWER_PREFIX + c for c in sample.choices)

    def gold_candidate(self, sample: ChoiceSample) -> int:
        return sample.labels.index(sample.answer)

    def gold(self, sample: ChoiceSample) -> Gold:
        """The output is the picked candidate: the cloze judge compares it with the candidates' texts."""
        return Gold(sample.answer, sample.labels, self.candidates(sample))


register_task(ARCCloze("arc_easy_cloze", "Easy", "arc_easy"))
register_task(ARCCloze("arc_challenge_cloze", "Challenge", "arc_challenge"))
