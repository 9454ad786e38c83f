"""GSM8K (math training task, paper §4.1).

Splits: the 7473 train problems are split by index parity, as the paper's code does:
even index -> `train`, odd index -> `valid`; `test` is the 1319-problem test file.
"""

from __future__ import annotations

from pathlib import Path

from t2core.errors import DataError
from t2core.tasks.answers import extract_number, numbers_equal
from t2core.tasks.base import Dataset, MathSample, Score, Task, register_task
from t2core.tasks.data import load_samples, require

PROMPT = (
    "{question}\n\nSolve the problem step by step. "
    "End with a final line of the form 'The answer is: <number>'."
)


def parse_gsm8k(rec: dict, where: str) -> MathSample:
    require(rec, ("question", "answer"), where)
    ans = rec["answer"]
    if "####" not in ans:
        raise DataError(f"{where}: answer has no final '#### <number>' line; expected GSM8K format.")
    solution, final = ans.rsplit("####", 1)
    return MathSample(id=where, question=rec["question"], answer=final.strip().replace(",", ""),
                      solution=solution.strip())


class GSM8K(Task):
    name = "gsm8k"
    family = "math"
    category = "math"
    version = "1"
    splits = ("train", "valid", "test")
    max_new_tokens = 256

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        fname = "test" if split == "test" else "train"
        samples, files = load_samples(data_dir, f"gsm8k/{fname}.jsonl", parse_gsm8k,
                                      hub=[("openai/gsm8k", "main", fname)])
        samples = [MathSample(f"gsm8k/{fname}/{i}", s.question, s.answer, s.solution) for i, s in enumerate(samples)]
        if split != "test":
            samples = samples[split == "valid" :: 2]
        return Dataset(self.name, split, samples, files, len(samples))

    def messages(self, sample: MathSample) -> list[dict[str, str]]:
        return [{"role": "user", "content": PROMPT.format(question=sample.question)}]

    def score(self, sample: MathSample, output: str) -> Score:
        parsed = extract_number(output)
        return Score(parsed, numbers_equal(parsed, sample.answer))


register_task(GSM8K())
