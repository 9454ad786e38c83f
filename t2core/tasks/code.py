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
from t2core.tasks.data import load_samples, require

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
        if sample.prefix and sample.entry_point:
            if f"def {sample.entry_point}" not in code:
                code = sample.prefix + code  # a completion of the stub's body
            else:  # a whole function: it still needs the stub's imports (e.g. `from typing import List`)
                imports = [ln for ln in sample.prefix.splitlines() if ln.startswith(("import ", "from "))]
                code = "\n".join(imports + [code])
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
        cfg = "sanitized" if self.sanitized else "full"
        rel = "mbpp/sanitized-mbpp.json" if self.sanitized else "mbpp/mbpp.jsonl"
        samples, files = load_samples(data_dir, rel, parse_mbpp, hub=[
            ("google-research-datasets/mbpp", cfg, hub_split) for hub_split in ("train", "test", "validation", "prompt")])
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
    version = "2"  # 2: a whole-function answer gets the stub's imports
    splits = ("test",)

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        samples, files = load_samples(data_dir, "humaneval/HumanEval.jsonl.gz", parse_humaneval,
                                      hub=[("openai/openai_humaneval", None, "test")])
        return Dataset(self.name, split, samples, files, len(samples))

    def messages(self, sample: CodeSample) -> list[dict[str, str]]:
        return [{"role": "user", "content": HUMANEVAL_PROMPT.format(prompt=sample.prompt)}]


register_task(MBPP("mbpp", sanitized=False))
register_task(MBPP("mbpp_sanitized", sanitized=True))
register_task(HumanEval())
