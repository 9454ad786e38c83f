"""MBPP (code training task) and HumanEval (unseen code task), paper §4.

MBPP splits by task id, as in the upstream README: `prompt` 1-10, `test` 11-510,
`valid` 511-600, `train` 601-974, and the paper's equal-size halves of 511-974 (A.1): `train_eq`
the even positions, `valid_eq` the odd (232 each); `mbpp` reads the full set, `mbpp_sanitized` the
sanitized one (same id ranges). HumanEval has only `test` (164 problems).
Outputs are scored in `t2core.sandbox`: the extracted program runs in one sandboxed process, the
trusted tests (MBPP's asserts, HumanEval's prompt and `check`) in another, and every call from the
tests to the program crosses a pipe as built-in data, so a program cannot forge its verdict.
"""

from __future__ import annotations

import ast
from pathlib import Path

from t2core.errors import DataError
from t2core.sandbox import SandboxLimits, TestSpec, isolation, run_many, run_tests
from t2core.scoring import DEFAULT_SCHEME, get_judge
from t2core.tasks.base import EQUAL_SPLITS, CodeSample, Dataset, Score, Task, equal_half, register_task
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


# Items whose tests cannot be judged across the sandbox's data boundary: every reference solution of
# MBPP and HumanEval was judged (docs/sandbox.md); these are the ones that do not pass, and why.
# They stay in evaluations (scored as failures for every model) and are left out of training.
UNJUDGEABLE = {
    "mbpp/367": "the test setup builds trees from the solution's own Node class (before it exists, and "
                "objects of a program's class cannot cross)",
    "mbpp/927": "the test setup builds trees from the solution's own Node class (as mbpp/367)",
    "mbpp/601": "the tests pass objects of the solution's own Pair class, which cannot cross",
}


class _CodeTask(Task):
    family = "code"
    category = "code"
    answer_kind = "code"
    max_new_tokens = 384
    limits = SandboxLimits()

    def unjudgeable(self, sample: CodeSample) -> str:
        return UNJUDGEABLE.get(sample.id, "")

    def preflight(self) -> None:
        isolation()  # SandboxUnavailable (one line: why, the fix, the opt-in) where code cannot be isolated

    def program(self, sample: CodeSample, output: str, scoring: str = DEFAULT_SCHEME) -> str:
        """The candidate's program, as the scoring scheme's program builder assembles it (t2: the
        extracted code after the setup imports and, for a restated HumanEval function, the prompt's
        imports and helpers; t2core/scoring/t2_code.py)."""
        return get_judge(scoring, "code")(output, sample)

    def test_spec(self, sample: CodeSample) -> TestSpec:
        """The trusted side: HumanEval's prompt (with its helpers) and check; MBPP's setup and asserts."""
        if sample.entry_point:
            return TestSpec(tests=sample.tests, setup=sample.prefix, names=(sample.entry_point,))
        return TestSpec(tests=sample.tests, setup=sample.setup, names=_defined_and_tested(sample))

    def score(self, sample: CodeSample, output: str, scoring: str = DEFAULT_SCHEME) -> Score:
        res = run_tests(self.program(sample, output, scoring), self.test_spec(sample), self.limits)
        return Score(res.status, res.passed, res.detail)

    def score_many(self, samples: list, outputs: list[str], scoring: str = DEFAULT_SCHEME) -> list[Score]:
        jobs = [(self.program(s, o, scoring), self.test_spec(s)) for s, o in zip(samples, outputs, strict=True)]
        return [Score(r.status, r.passed, r.detail) for r in run_many(jobs, self.limits)]

    def reference(self, sample: CodeSample) -> str:
        return sample.solution


def _defined_and_tested(sample: CodeSample) -> tuple[str, ...]:
    """Top-level names the reference solution defines and the tests read (MBPP's function under test).

    Trusted data decides which names come from the candidate, so a program that also defines,
    say, `sorted` cannot change what the asserts compute; one that defines `sum` because the
    task asks for a function called `sum` still gets called."""
    try:
        ref, tests = ast.parse(sample.solution), ast.parse(sample.tests)
    except SyntaxError:
        return ()
    defined = set()
    for node in ref.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    read = [n.id for n in ast.walk(tests) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return tuple(dict.fromkeys(n for n in read if n in defined))


def parse_mbpp(rec: dict, where: str) -> CodeSample:
    require(rec, ("task_id", "code", "test_list"), where)
    text = rec.get("text") or rec.get("prompt")
    if not text:
        raise DataError(f"{where}: record has neither 'text' (full MBPP) nor 'prompt' (sanitized MBPP).")
    setup = rec.get("test_setup_code") or "\n".join(rec.get("test_imports") or [])
    return CodeSample(id=f"mbpp/{rec['task_id']}", prompt=text, tests="\n".join(rec["test_list"]),
                      solution=rec["code"].replace("\r\n", "\n"), setup=setup)


class MBPP(_CodeTask):
    version = "2"  # 2: judged in two sandboxes, values cross as built-in data (t2core/sandbox)
    splits = (*MBPP_RANGES, *EQUAL_SPLITS)

    def __init__(self, name: str, sanitized: bool) -> None:
        self.name, self.sanitized = name, sanitized

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        cfg = "sanitized" if self.sanitized else "full"
        rel = "mbpp/sanitized-mbpp.json" if self.sanitized else "mbpp/mbpp.jsonl"
        samples, files = load_samples(data_dir, rel, parse_mbpp, hub=[
            ("google-research-datasets/mbpp", cfg, hub_split) for hub_split in ("train", "test", "validation", "prompt")])
        lo, hi = MBPP_RANGES[split] if split in MBPP_RANGES else (MBPP_RANGES["valid"][0], MBPP_RANGES["train"][1])
        picked = sorted((s for s in samples if lo <= int(s.id.split("/")[1]) <= hi), key=lambda s: int(s.id.split("/")[1]))
        if split in EQUAL_SPLITS:
            picked = equal_half(picked, split)
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
    # 2: a whole-function answer gets the stub's imports; 3: two-sandbox judge; 4: ... and the prompt's helpers
    version = "4"
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
