"""MBPP (code training task) and HumanEval (unseen code task), paper §4.

MBPP splits by task id, as in the upstream README: `prompt` 1-10, `test` 11-510,
`valid` 511-600, `train` 601-974; `mbpp` reads the full set, `mbpp_sanitized` the
sanitized one (same id ranges). HumanEval has only `test` (164 problems).
Outputs are scored by running the extracted code plus the tests in `t2core.sandbox`.
"""

from __future__ import annotations

from pathlib import Path

from t2core.errors import DataError
from t2core.sandbox import SandboxLimits, run_code
from t2core.tasks.answers import extract_code
from t2core.tasks.base import CodeSample, Dataset, Score, Task, register_task
from t2core.tasks.data import (
    data_file,
    file_hashes,
    hub_records,
    parse_records,
    read_json_array,
    read_jsonl,
    require,
)

MBPP_RANGES = {"prompt": (1, 10), "test": (11, 510), "valid": (511, 600), "train": (601, 974)}
MBPP_PROMPT = (
    "You are an expert Python programmer, and here is your task: {text}\n"
    "Your code should pass these tests:\n\n{tests}\n\n"
    "Write the function in a single ```python code block."
)
HUMANEVAL_PROMPT = (
    "Complete the following Python function. Return the whole function in a single ```python code block.\n\n"
    "```python\n{prompt}```"
)


class _CodeTask(Task):
    family = "code"
    max_new_tokens = 384
    limits = SandboxLimits()

    def program(self, sample: CodeSample, output: str) -> str:
        code = extract_code(output)
        if sample.prefix and sample.entry_point and f"def {sample.entry_point}" not in code:
            code = sample.prefix + code  # completion of the stub body
        return "\n\n".join(x for x in (sample.setup, code, sample.tests) if x)

    def score(self, sample: CodeSample, output: str) -> Score:
        res = run_code(self.program(sample, output), self.limits)
        return Score(res.status, res.passed, res.detail)

    def reference(self, sample: CodeSample) -> str:
        return sample.solution


def parse_mbpp(rec: dict, where: str) -> CodeSample:
    require(rec, ("task_id", "code", "test_list"), where)
    text = rec.get("text") or rec.get("prompt")
    if not text:
        raise DataError(f"{where}: record has neither 'text' (full MBPP) nor 'prompt' (sanitized MBPP).")
    setup = rec.get("test_setup_code") or "\n".join(rec.get("test_imports") or [])
    return CodeSample(id=f"mbpp/{rec['task_id']}", prompt=text, tests="\n".join(rec["test_list"]),
                      solution=rec["code"].replace("\r\n", "\n"), setup=setup)


class MBPP(_CodeTask):
    version = "1"
    splits = tuple(MBPP_RANGES)

    def __init__(self, name: str, sanitized: bool) -> None:
        self.name, self.sanitized = name, sanitized

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        if data_dir is None:
            cfg = "sanitized" if self.sanitized else "full"
            rows, files = [], {}
            for hub_split in ("train", "test", "validation", "prompt"):
                r, f = hub_records("google-research-datasets/mbpp", cfg, hub_split)
                rows += r
                files |= f
            samples = parse_records(enumerate(rows), f"hub:mbpp/{cfg}", parse_mbpp)
        elif self.sanitized:
            path = data_file(data_dir, "mbpp/sanitized-mbpp.json")
            samples = parse_records(read_json_array(path), str(path), parse_mbpp)
            files = file_hashes([path])
        else:
            path = data_file(data_dir, "mbpp/mbpp.jsonl")
            samples = parse_records(read_jsonl(path), str(path), parse_mbpp)
            files = file_hashes([path])
        lo, hi = MBPP_RANGES[split]
        picked = sorted((s for s in samples if lo <= int(s.id.split("/")[1]) <= hi), key=lambda s: int(s.id.split("/")[1]))
        return Dataset(self.name, split, picked, files, len(picked))

    def messages(self, sample: CodeSample) -> list[dict[str, str]]:
        return [{"role": "user", "content": MBPP_PROMPT.format(text=sample.prompt, tests=sample.tests)}]


def parse_humaneval(rec: dict, where: str) -> CodeSample:
    require(rec, ("task_id", "prompt", "canonical_solution", "test", "entry_point"), where)
    tests = rec["test"] + f"\n\ncheck({rec['entry_point']})\n"
    return CodeSample(id=rec["task_id"], prompt=rec["prompt"], tests=tests, entry_point=rec["entry_point"],
                      solution=rec["prompt"] + rec["canonical_solution"], prefix=rec["prompt"])


class HumanEval(_CodeTask):
    name = "humaneval"
    version = "1"
    splits = ("test",)

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        if data_dir is None:
            rows, files = hub_records("openai/openai_humaneval", None, "test")
            samples = parse_records(enumerate(rows), "hub:openai/openai_humaneval/test", parse_humaneval)
        else:
            path = data_file(data_dir, "humaneval/HumanEval.jsonl.gz")
            samples = parse_records(read_jsonl(path), str(path), parse_humaneval)
            files = file_hashes([path])
        return Dataset(self.name, split, samples, files, len(samples))

    def messages(self, sample: CodeSample) -> list[dict[str, str]]:
        return [{"role": "user", "content": HUMANEVAL_PROMPT.format(prompt=sample.prompt)}]


register_task(MBPP("mbpp", sanitized=False))
register_task(MBPP("mbpp_sanitized", sanitized=True))
register_task(HumanEval())
