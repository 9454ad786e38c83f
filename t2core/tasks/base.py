"""Task interface, normalised sample types and the task registry.

A task (paper §4: GSM8K, MBPP, ARC-Easy for training; MATH, HumanEval, ARC-Challenge
unseen) knows how to load its splits, turn a sample into a chat prompt, and score a
model output. One sample type per task family keeps prompts and checkers shared.
Adding a task is one file that calls `register_task(...)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2core.errors import ConfigError, DataError
from t2core.registry import Registry
from t2core.scoring import DEFAULT_SCHEME, KINDS, Gold, Score, get_judge


@dataclass(frozen=True)
class MathSample:
    """GSM8K / MATH / MATH-500: a question with one final answer."""

    id: str
    question: str
    answer: str  # final answer as text (GSM8K number, MATH boxed content)
    solution: str = ""  # reference worked solution
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class ChoiceSample:
    """ARC: a multiple-choice question; labels are the item's own (A-E or 1-5)."""

    id: str
    question: str
    labels: tuple[str, ...]
    choices: tuple[str, ...]
    answer: str  # one of `labels`

    @property
    def answer_text(self) -> str:
        return self.choices[self.labels.index(self.answer)]


@dataclass(frozen=True)
class CodeSample:
    """MBPP / HumanEval: a programming problem checked by executing tests."""

    id: str
    prompt: str  # natural-language task (MBPP) or function stub with docstring (HumanEval)
    tests: str  # Python source that raises on failure
    entry_point: str = ""
    solution: str = ""  # reference solution (LoRA-NTP targets)
    setup: str = ""  # code run before the tests (imports)
    prefix: str = ""  # code the completion continues (HumanEval's stub), prepended when missing


Sample = MathSample | ChoiceSample | CodeSample


@dataclass
class Dataset:
    """Samples of one split plus provenance: the sha256 of every file read."""

    task: str
    split: str
    samples: list
    files: dict[str, str]  # path (or hub id) -> sha256
    n_total: int = 0  # records in the split before any limit

    def __len__(self) -> int:
        return len(self.samples)

    def limit(self, n: int | None) -> Dataset:
        if n is None or n >= len(self.samples):
            return self
        return Dataset(self.task, self.split, self.samples[:n], self.files, self.n_total)


class Task(ABC):
    """One benchmark. Subclasses are small: data loading, prompt, checker."""

    name: str
    family: str  # "math" | "choice" | "code"
    # the skill the task asks for (paper §3.3's dispatch categories): an expert trained on the task
    # serves questions classified into it; "other" keeps the base weights
    category: str = "other"  # "math" | "code" | "reasoning" | "other"
    version: str  # bump when prompts, parsing or splits change: recorded with every run
    splits: tuple[str, ...]
    max_new_tokens: int = 256
    # "generate": the model writes an answer that `score` parses (the paper's protocol).
    # "choice": the model picks one of `candidates(sample)` by log-likelihood (lm-eval-harness
    # "multiple_choice"; the cloze formulation of OLMES), and `score` gets the picked text.
    output_type: str = "generate"
    # the paper benchmark this task measures (reports group by it); None: the task's own name
    benchmark: str | None = None
    # how an output is judged (t2core.scoring.KINDS): "number", "math", "choice", "cloze" or "code";
    # the judge comes from the scoring scheme asked for (default "t2"; "released": the paper's code).
    # "": the task judges its own outputs (it overrides `score`), under the default scheme only.
    answer_kind: str = ""

    @abstractmethod
    def load(self, split: str, data_dir: Path | None) -> Dataset: ...

    @abstractmethod
    def messages(self, sample: Sample) -> list[dict[str, str]]:
        """Chat messages for the sample (rendered with the tokenizer's chat template)."""

    def gold(self, sample: Sample) -> Gold:
        """What a judge compares an output with: the gold answer, and an item's options."""
        if isinstance(sample, ChoiceSample):
            return Gold(sample.answer, sample.labels, sample.choices)
        return Gold(str(sample.answer))

    def score(self, sample: Sample, output: str, scoring: str = DEFAULT_SCHEME) -> Score:
        return self.score_many([sample], [output], scoring)[0]

    def score_many(self, samples: list, outputs: list[str], scoring: str = DEFAULT_SCHEME) -> list[Score]:
        """Judge a batch (evaluations, RL rollouts) with `scoring`'s judge of this task's answer kind,
        or with the task's own `score` where it has one."""
        if type(self).score is not Task.score:  # a task with its own judge
            if scoring != DEFAULT_SCHEME:
                raise ConfigError(f"task {self.name!r} judges its own outputs (its `score`), so it has no "
                                  f"{scoring!r} judge; use --scoring {DEFAULT_SCHEME}.")
            return [self.score(s, o) for s, o in zip(samples, outputs, strict=True)]
        if not self.answer_kind:
            raise ConfigError(f"task {self.name!r} has no answer_kind and no `score` of its own: set answer_kind "
                              f"to one of {', '.join(KINDS)}, or override score().")
        return get_judge(scoring, self.answer_kind)(list(outputs), [self.gold(s) for s in samples])

    def unjudgeable(self, sample: Sample) -> str:
        """Why this sample's checker cannot judge any answer ('' if it can). Such samples give no
        training signal, so REINFORCE leaves them out of its training data (`plan_training`)."""
        return ""

    def preflight(self) -> None:  # noqa: B027 - optional hook: most tasks can always be scored
        """Fail now, before any work or catalog row, if this task cannot be scored here
        (code tasks: no sandbox and no `--unsafe-exec`)."""

    def candidates(self, sample: Sample) -> tuple[str, ...]:
        """The assistant-turn continuations a choice task picks from (output_type "choice")."""
        raise TypeError(f"task {self.name!r} generates its answers (output_type {self.output_type!r}); "
                        "it has no candidate answers.")

    def gold_candidate(self, sample: Sample) -> int:
        """Index of the correct candidate (output_type "choice")."""
        raise TypeError(f"task {self.name!r} has no candidate answers.")

    def reference_completion(self, sample: Sample) -> str:
        """The answer a perfect model writes under this task's prompt: what next-token prediction trains on
        (LoRA-NTP, paper §4.1; SVF-NTP, Table 4). By default the correct candidate of a choice task, the
        option's label of a lettered one, a code block of the reference solution, or the worked solution
        of a math problem (its answer where it has none). A task whose prompt asks for a closing line
        (GSM8K's 'The answer is: <number>') says so by overriding this; nothing branches on its name."""
        if self.output_type == "choice":  # the correct candidate continuation (cloze ARC: "Answer: <text>")
            return self.candidates(sample)[self.gold_candidate(sample)]
        if isinstance(sample, ChoiceSample):
            return sample.answer
        if isinstance(sample, CodeSample):
            text = f"```python\n{sample.solution.strip()}\n```" if sample.solution.strip() else ""
        elif isinstance(sample, MathSample):
            text = sample.solution or sample.answer
        else:
            text = ""
        if not text.strip():
            raise DataError(f"task {self.name!r} has no reference completion for sample {getattr(sample, 'id', '?')!r} "
                            f"({type(sample).__name__}); give it a solution or override reference_completion().")
        return text

    def reference(self, sample: Sample) -> str:
        """The gold answer as stored in the per-sample results."""
        return str(getattr(sample, "answer", "") or getattr(sample, "solution", ""))

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise DataError(f"task {self.name!r} has no split {split!r}; its splits are {', '.join(self.splits)}.")
        return split


#: The paper's layout of a training task (A.1): its training and validation data pooled and halved,
#: items alternating (even -> train_eq, odd -> valid_eq), as GSM8K's train and valid already are.
EQUAL_SPLITS = ("train_eq", "valid_eq")


def equal_half(samples: list, split: str) -> list:
    """`split`'s half (EQUAL_SPLITS) of the pooled training and validation `samples`, in order."""
    return samples[split == "valid_eq"::2]


_TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    return _TASKS.register(task.name, task)


def task_names() -> list[str]:
    return _TASKS.names()


def get_task(name: str) -> Task:
    return _TASKS.get(name)
