"""A synthetic task a tiny random model can learn: reward +1 when the first generated
character is ASCII. At init about half the byte-level vocabulary qualifies, so rollouts
get mixed rewards, and shifting probability mass is reachable by scaling singular values."""

from __future__ import annotations

from t2core.tasks.base import Dataset, MathSample, Score, Task, register_task, task_names


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
