"""Synthetic tasks a tiny random model can learn, one per rollout kind.

- `synthetic_ascii` (generate): reward +1 when the first generated character is ASCII. At
  init about half the byte-level vocabulary qualifies, so rollouts get mixed rewards, and
  shifting probability mass is reachable by scaling singular values.
- `synthetic_choice` (choice): pick the candidate that says "apple" among three.
"""

from __future__ import annotations

from t2core.tasks.base import ChoiceSample, Dataset, MathSample, Score, Task, register_task, task_names


class FirstCharASCII(Task):
    name = "synthetic_ascii"
    family = "math"
    version = "1"
    splits = ("train", "valid", "test")
    max_new_tokens = 1

    def load(self, split, data_dir):
        n = {"train": 64, "valid": 16, "test": 16}[split]
        off = {"train": 0, "valid": 1000, "test": 2000}[split]
        samples = [MathSample(id=f"syn/{split}/{i}", question=f"Say something #{off + i}", answer="") for i in range(n)]
        return Dataset(self.name, split, samples, {f"synthetic:{split}": "0" * 64}, n)

    def messages(self, sample):
        return [{"role": "user", "content": sample.question}]

    def score(self, sample, output):
        ok = bool(output) and ord(output[0]) < 128
        return Score(output[:1], ok)


if "synthetic_ascii" not in task_names():
    register_task(FirstCharASCII())


class PickTheWord(Task):
    """A choice task a tiny random model can learn: the correct candidate is always the one
    ending in "apple", listed among two others in a per-item order (position is no cue)."""

    name = "synthetic_choice"
    family = "choice"
    output_type = "choice"
    version = "1"
    splits = ("train", "valid", "test")
    max_new_tokens = 1
    WORDS = ("apple", "zebra", "quilt")

    def load(self, split, data_dir):
        n = {"train": 64, "valid": 16, "test": 16}[split]
        samples = [ChoiceSample(id=f"pick/{split}/{i}", question=f"Pick one #{i}", labels=("A", "B", "C"),
                                choices=tuple(self.WORDS[(j + i) % 3] for j in range(3)),
                                answer="ABC"[(3 - i % 3) % 3]) for i in range(n)]
        return Dataset(self.name, split, samples, {f"synthetic-choice:{split}": "0" * 64}, n)

    def messages(self, sample):
        return [{"role": "user", "content": sample.question}]

    def candidates(self, sample):
        return tuple(f"Answer: {c}" for c in sample.choices)

    def gold_candidate(self, sample):
        return sample.labels.index(sample.answer)

    def score(self, sample, output):
        ok = output == self.candidates(sample)[self.gold_candidate(sample)]
        return Score(output, ok)


if "synthetic_choice" not in task_names():
    register_task(PickTheWord())
