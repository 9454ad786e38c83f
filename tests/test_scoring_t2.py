"""t2's scoring scheme (docs/scoring.md): each answer class judged by what the output means.

The stress set (tests/data/scoring_stress.jsonl: realistic outputs with golds and the verdict a
careful grader gives) must see no false pass and at least 95% agreement; the named classes below
each failed with the scorer before this one (issues 34 and 42), on outputs written as a model
writes them.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from t2core.scoring import Gold, get_judge
from t2core.scoring.rules.latex import final_answer, last_boxed, normalize
from t2core.scoring.t2_code import build_program, extract_code, prompt_context
from t2core.tasks import get_task, load_split

STRESS = Path(__file__).parent / "data" / "scoring_stress.jsonl"
needs_sandbox = pytest.mark.skipif(shutil.which("bwrap") is None, reason="the MATH judge runs in the sandbox")


def stress_rows() -> list[dict]:
    return [json.loads(line) for line in STRESS.read_text().splitlines() if line.strip()]


def judge_rows(scheme: str, rows: list[dict]) -> dict[str, object]:
    by_kind = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
    out = {}
    for kind, rs in by_kind.items():
        golds = [Gold(r["gold"], tuple(r.get("labels", ())), tuple(r.get("choices", ()))) for r in rs]
        for r, s in zip(rs, get_judge(scheme, kind)([r["output"] for r in rs], golds), strict=True):
            out[r["id"]] = s
    return out


def test_the_stress_set_is_large_and_covers_every_kind():
    rows = stress_rows()
    assert len(rows) >= 150 and len({r["id"] for r in rows}) == len(rows)
    kinds = defaultdict(set)
    for r in rows:
        kinds[r["kind"]].add(r["truth"])
    assert kinds == {"number": {True, False}, "math": {True, False}, "choice": {True, False}}


@needs_sandbox
def test_t2_has_no_false_pass_and_matches_the_careful_grader_on_95_percent():
    rows = stress_rows()
    got = judge_rows("t2", rows)
    false_pass = [r["id"] for r in rows if got[r["id"]].correct and not r["truth"]]
    agree = sum(got[r["id"]].correct == r["truth"] for r in rows)
    assert false_pass == []
    assert agree / len(rows) >= 0.95, [r["id"] for r in rows if got[r["id"]].correct != r["truth"]]


def number(text: str, gold: str):
    return get_judge("t2", "number")([text], [Gold(gold)])[0]


@pytest.mark.parametrize("text,gold,parsed,correct", [
    ("So she earns 9 * 2 = $18.\n#### 18", "18", "18", True),
    ("The answer is: 18 - 2 = 16", "16", "16", True),  # the result, not the first operand
    ("The answer is: 18 - 2 = 16", "18", "16", False),
    ("She pours 3/4 of the jug.\nThe answer is: 3/4", "3", "0.75", False),  # never the numerator
    ("The answer is: 3/4", "0.75", "0.75", True),
    ("The answer is 1 000 apples.", "1000", "1000", True),
    ("The answer is: $1,200.00.", "1200", "1200", True),
    ("The answer is: 12.\nWait, I made an error: 3 x 4 = 12, plus 2 is 14.\nThe answer is: 14", "14", "14", True),
    ("The answer is: 25\n\nHmm, actually I forgot the 5 she gave away: 25 - 5 = 20.", "20", "20", True),
    ("**The answer is: -10**", "-10", "-10", True),
    ("**The answer is: -10**", "10", "-10", False),
    ("The answer is: 1 1/2 cups", "1.5", "1.5", True),
    ("The answer is: 1.2 million", "1200000", "1200000", True),
    ("The answer is: $\\$1{,}200$", "1200", "1200", True),
    ("Sam had 20 marbles.\nHow many now?\nSam had 20 marbles", "20", None, False),  # a loop states nothing
    ("She uses 4 eggs for muffins, so 13 - 4 =", "9", None, False),  # cut off
    ("First 3 apples, then 4 more: 7", "7", "7", True),
])
def test_number_classes(text, gold, parsed, correct):
    s = number(text, gold)
    assert (s.parsed, s.correct) == (parsed, correct)


CHOICES = ("rock", "water", "wind", "a triangle")


def choice(text: str, gold: str = "B", labels=("A", "B", "C", "D"), choices=CHOICES):
    return get_judge("t2", "choice")([text], [Gold(gold, labels, choices)])[0].parsed


@pytest.mark.parametrize("text,parsed", [
    ("B", "B"),
    ("The answer is C.", "C"),
    ("(D) because", "D"),
    ("B. water", "B"),
    ("the answer is b.", "B"),
    ("The answer is a triangle.", "D"),  # 'a' is the article; the option text decides (issue 34)
    ("The answer is a boat.", None),
    ("A plant cannot grow without light, so the answer is (C).", "C"),  # a sentence's 'A' is no label
    ("B and C are both plausible, but C is best.", "C"),
    ("(A)... wait, actually (B)", "B"),  # the self-correction wins
    ("A. rock\nB. water\nC. wind\nD.", None),  # a truncated echo of the options commits to nothing
    ("It must be water, since rocks do not flow.", "B"),
    ("Either A or C could be correct.", None),
    ("None of the options is correct.", None),
])
def test_choice_classes(text, parsed):
    assert choice(text) == parsed


def test_numeric_labels_count_only_when_stated():
    labels, texts = ("1", "2", "3", "4"), ("one moon", "two moons", "three moons", "four moons")
    assert choice("The answer is 3", "3", labels, texts) == "3"
    assert choice("Mars has 2 moons and Earth 1, so", "2", labels, texts) is None


@needs_sandbox
@pytest.mark.parametrize("text,gold,correct", [
    ("so the sum is even: \\boxed{\\text{even}}", "\\text{odd}", False),  # issue 34: both used to become ""
    ("\\boxed{\\text{even}}", "\\text{even}", True),
    ("\\boxed{}", "\\text{even}", False),
    ("The answer is: 5", "5", True),
    ("\\boxed{5 \\text{ cm}^2}", "5", True),
    ("\\boxed{0.25}", "\\frac{1}{4}", True),
    ("\\boxed{\\frac{7}{2}}", "3.5", True),
    ("\\boxed{2^{10}}", "1024", True),
    ("\\boxed{\\frac{-1}{2}}", "-\\frac{1}{2}", True),
    ("\\boxed{1{,}000}", "1000", True),
    ("\\boxed{90°}", "90", True),
    ("\\boxed{(2,5]}", "[2,5]", False),
    ("\\boxed{1000}", "10", False),
    ("\\boxed{0.1}", "10\\%", False),
    ("\\boxed{10}", "10\\%", True),
    ("\\boxed{0.\\overline{3}}", "\\frac{1}{3}", True),
    ("\\boxed{x > 3}", "(3,\\infty)", True),
    ("it could be \\boxed{2} or \\boxed{3}", "3", False),
    ("so the side is \\sqrt", "2", False),
])
def test_math_classes(text, gold, correct):
    assert get_judge("t2", "math")([text], [Gold(gold)])[0].correct is correct


@needs_sandbox
def test_math_text_is_evaluated_in_the_sandbox_not_here(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"\\boxed{{__import__('pathlib').Path('{marker}').write_text('x')}}"
    s = get_judge("t2", "math")([hostile, "\\boxed{3}"], [Gold("1"), Gold("3")])
    assert [x.correct for x in s] == [False, True] and not marker.exists()


def test_latex_helpers():
    assert last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed("no box") is None and last_boxed(r"\boxed{2\sqrt") is None
    assert final_answer("Thus the final answer is $\\frac{3}{4}$.") == "\\frac{3}{4}"
    assert normalize(r"\text{even}") == "even" != normalize(r"\text{odd}")
    assert normalize(r"5\text{ cm}") == "5" and normalize(r"\dfrac12") == r"\frac{1}{2}"


def test_extract_code():
    out = "Here:\n```python\ndef f(x):\n    return x\n```\nDone."
    assert extract_code(out) == "def f(x):\n    return x\n"
    assert extract_code("def g(): pass") == "def g(): pass"
    assert "def h" in extract_code("```python\ndef h():\n  return 1")  # unterminated fence


def test_humaneval_helpers_reach_a_restated_function(data_dir):
    """Issue 34: an answer that restates only the target lost the prompt's helpers (NameError)."""
    items = {s.id: s for s in load_split("humaneval", "test", data_dir).samples}
    s = items["HumanEval/38"]
    assert "def encode_cyclic" in prompt_context(s.prefix, s.entry_point)
    assert "def decode_cyclic" not in prompt_context(s.prefix, s.entry_point)
    answer = "```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```"
    program = build_program(answer, s)
    assert program.index("def encode_cyclic") < program.index("def decode_cyclic")


@pytest.mark.parametrize("task_id,body", [
    ("HumanEval/10", "    if not string:\n        return ''\n    for i in range(len(string)):\n"
                     "        if is_palindrome(string[i:]):\n            return string + string[:i][::-1]\n"),
    ("HumanEval/38", "    return encode_cyclic(encode_cyclic(s))\n"),
])
def test_humaneval_restated_function_calling_a_helper_passes(data_dir, task_id, body):
    """Judged in the sandbox: the real records, answered with only the target function."""
    pytest.importorskip("t2core.sandbox")
    if shutil.which("bwrap") is None:
        pytest.skip("needs the sandbox")
    task = get_task("humaneval")
    s = {x.id: x for x in load_split("humaneval", "test", data_dir).samples}[task_id]
    sig = next(ln for ln in s.prefix.splitlines() if ln.startswith(f"def {s.entry_point}"))
    answer = f"```python\n{sig}\n{body}```"
    assert task.score(s, answer).correct


@needs_sandbox
def test_t2_on_the_held_out_set():
    """tests/data/scoring_heldout.jsonl was written apart from the scorer and from the stress set.
    Measured before t2 saw it: 109/120 right, 5 false passes; the general defects it showed were
    fixed (docs/scoring.md). The one false pass left needs the question: an answer factored where
    the problem asked to expand is the same polynomial by value."""
    rows = [json.loads(line) for line in (STRESS.parent / "scoring_heldout.jsonl").read_text().splitlines() if line]
    got = judge_rows("t2", rows)
    false_pass = [r["id"] for r in rows if got[r["id"]].correct and not r["truth"]]
    agree = sum(got[r["id"]].correct == r["truth"] for r in rows)
    assert false_pass == ["h-math-015"]
    assert agree / len(rows) >= 0.95
