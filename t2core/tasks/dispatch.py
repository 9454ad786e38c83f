"""The classification task the cls-expert is trained on (paper §3.3, "classification expert").

Each item is a question from one of the K training tasks, shown exactly as that task shows it,
with the dispatch prompt of `t2core.tasks.categories` as the system message; the answer is the
category of its task (GSM8K → math, MBPP → code, ARC-Easy → reasoning), picked among the four
category answers by likelihood, as the prompt strategy's choice formulation picks it. REINFORCE
(paper Eq. 2, `t2core/training/choice.py`) trains an SVF expert z^c on it like on any choice task.

Built from the **training splits** of the training tasks for training and their **validation
splits** for validation, never from a test split: the official code trained the classifier on test
questions of the tasks it is then scored on. Items interleave the categories round-robin, so every
prefix (`train_limit`) is balanced (the categories are cut to the smallest, MBPP's); ARC-Easy questions alternate between its letter and cloze
presentations, as the unseen ARC-Challenge is evaluated in both. Item ids are
`<source task>:<source id>`, so the catalog can show which questions were used
(`test_the_dispatch_task_never_reads_a_test_split`).
"""

from __future__ import annotations

from pathlib import Path

from t2core.scoring import Gold
from t2core.tasks.base import ChoiceSample, Dataset, Task, get_task, register_task
from t2core.tasks.categories import CATEGORIES, category_answer, classification_messages

#: (category, the training tasks whose questions stand for it)
SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("math", ("gsm8k",)),
    ("code", ("mbpp",)),
    ("reasoning", ("arc_easy", "arc_easy_cloze")),
)
LABELS = CATEGORIES


class DispatchTask(Task):
    name = "dispatch"
    family = "choice"
    output_type = "choice"
    version = "1"
    splits = ("train", "valid")
    max_new_tokens = 1
    answer_kind = "cloze"

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        files: dict[str, str] = {}
        per_cat: list[list[ChoiceSample]] = []
        n_total = 0
        for cat, tasks in SOURCES:
            loaded = []
            for t in tasks:
                task = get_task(t)
                ds = task.load(split, data_dir)
                files.update(ds.files)
                n_total += len(ds.samples)
                loaded.append([(task, s) for s in ds.samples])
            # the j-th question in presentation j mod m (ARC-Easy: letters, cloze, letters, ...)
            merged = [loaded[j % len(loaded)][j] for j in range(min(len(x) for x in loaded))]
            per_cat.append([self._item(task, s, cat) for task, s in merged])
        items = [x for group in zip(*per_cat, strict=False) for x in group]  # round-robin: every prefix balanced
        return Dataset(self.name, split, items, files, n_total)

    @staticmethod
    def _item(task: Task, sample, category: str) -> ChoiceSample:
        question = task.messages(sample)[-1]["content"]
        return ChoiceSample(id=f"{task.name}:{sample.id}", question=question, labels=LABELS, choices=LABELS,
                            answer=category)

    def messages(self, sample: ChoiceSample) -> list[dict[str, str]]:
        return classification_messages(sample.question)

    def candidates(self, sample: ChoiceSample) -> tuple[str, ...]:
        return tuple(category_answer(c) for c in sample.choices)

    def gold_candidate(self, sample: ChoiceSample) -> int:
        return sample.labels.index(sample.answer)

    def gold(self, sample: ChoiceSample) -> Gold:
        return Gold(sample.answer, sample.labels, self.candidates(sample))


register_task(DispatchTask())
