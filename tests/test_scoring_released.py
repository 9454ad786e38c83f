"""The `released` scoring scheme reproduces the paper's released scorers, defects included.

1. On every stress item (tests/data/scoring_stress.jsonl) the port gives the verdict the REAL
   released code gave (tests/data/scoring_stress_released.json, made by bench/released_reference.py
   with the released fishfarm package; rerun it by hand when the stress set changes).
2. Each defect named in issue 42, by hand, with the released code's verdict (each checked against
   the released code when written).
The released MATH rules evaluate text (sympy's parse_expr): here they are called directly (trusted
test inputs), and once through the sandboxed `judge_isolated`, skipped where there is no bwrap.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest

from t2core.scoring import Gold, get_judge, judge_source
from t2core.scoring.released_code import build_released_program, completion_of, mbpp_entry_point
from t2core.scoring.rules import released_math as rm

DATA = Path(__file__).parent / "data"
STRESS = [json.loads(ln) for ln in (DATA / "scoring_stress.jsonl").read_text().splitlines() if ln.strip()]
STRESS = [r for r in STRESS if r["kind"] in ("number", "math", "choice")]
REFERENCE = json.loads((DATA / "scoring_stress_released.json").read_text())
REGENERATE = "stale reference: rerun bench/released_reference.py (by hand, with the released code)"


def _sha(row: dict) -> str:  # bench/released_reference.py `item_sha`
    key = json.dumps([row["kind"], row["output"], row["gold"], row.get("choices") or []])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _gold(row: dict) -> Gold:
    return Gold(row["gold"], tuple(row.get("labels") or ()), tuple(row.get("choices") or ()))


def number(output: str, gold: str):
    s = get_judge("released", "number")([output], [Gold(gold)])[0]
    return s.parsed, s.correct


def choice(output: str, gold: str, n: int = 4, labels: tuple[str, ...] = ("A", "B", "C", "D")):
    gold_ = Gold(gold, labels[:n], tuple(f"opt{i}" for i in range(n)))
    s = get_judge("released", "choice")([output], [gold_])[0]
    return s.parsed, s.correct


# --- 1. the real released code's verdicts on the stress set ---------------------------------------

def test_reference_covers_the_stress_set():
    missing = [r["id"] for r in STRESS if r["id"] not in REFERENCE]
    edited = [r["id"] for r in STRESS if r["id"] in REFERENCE and REFERENCE[r["id"]].get("sha") != _sha(r)]
    assert not missing and not edited, f"{REGENERATE}: missing {missing[:5]}, edited {edited[:5]}"


@pytest.mark.parametrize("row", STRESS, ids=[r["id"] for r in STRESS])
def test_port_reproduces_released_verdict(row):
    want = REFERENCE.get(row["id"])
    if want is None or want.get("sha") != _sha(row):
        pytest.fail(REGENERATE)
    if row["kind"] == "math":
        if "raises" in want:
            with pytest.raises(rm.ReleasedEvaluationAborts):
                rm.judge(row["output"], row["gold"])
            return
        got = rm.judge(row["output"], row["gold"])
    else:
        s = get_judge("released", row["kind"])([row["output"]], [_gold(row)])[0]
        got = (s.parsed, s.correct)
    assert got == (want["parsed"], want["correct"])


def _skip_without_sandbox() -> None:
    """The released MATH rules run in the sandbox: skip where it cannot start."""
    if shutil.which("bwrap") is None:
        pytest.skip("needs bwrap: the released MATH rules run in the sandbox")
    from t2core.sandbox.isolate import SandboxUnavailable, isolation

    try:
        isolation()
    except SandboxUnavailable as e:
        pytest.skip(str(e))


def test_math_through_the_sandbox_matches_the_reference():
    _skip_without_sandbox()
    rows = [r for r in STRESS if r["kind"] == "math"]
    scores = get_judge("released", "math")([r["output"] for r in rows], [_gold(r) for r in rows])
    for row, s in zip(rows, scores, strict=True):
        want = REFERENCE[row["id"]]
        if "raises" in want:
            assert (s.correct, "ReleasedEvaluationAborts" in s.detail) == (False, True), row["id"]
        else:
            assert (s.parsed, s.correct) == (want["parsed"], want["correct"]), row["id"]


def test_every_released_judge_cites_its_source():
    for kind in ("number", "math", "choice", "code"):
        assert "SakanaAI/self-adaptive-llms@03a41aed" in judge_source("released", kind)


# --- 2. the defects, one by one -------------------------------------------------------------------

def test_gsm8k_drops_commas_in_gold_and_prediction_alike():
    raw_gold = "She earns 276,000 a year.\n#### 276,000"  # as the released code reads the dataset
    assert number("The answer is 276,000", raw_gold) == ("0.0", True)  # 276,000 reads 0 on both sides
    assert number("The answer is 276000", raw_gold) == ("276000.0", False)  # the right number fails
    assert number("The answer is 276,000", "276000") == ("0.0", False)  # t2's comma-free gold


def test_gsm8k_drops_minus_signs():
    assert number("The answer is -10", "10") == ("10.0", True)  # a false pass
    assert number("The answer is: -10", "-10") == ("10.0", True)


def test_gsm8k_last_number_of_the_output_wins():
    assert number("The answer is 16. Check: 4 eggs", "16") == ("4.0", False)
    assert number("3/4", "4") == ("4.0", True)  # a fraction reads as its denominator
    assert number("nothing here", "12") == (None, False)


def test_math_percent_rule():
    assert rm.judge("\\boxed{1000}", "10") == ("1000", True)  # gold * 100
    assert rm.judge("\\boxed{0.1}", "10") == ("0.1", True)  # gold / 100
    assert rm.judge("\\boxed{10.0005}", "10") == ("10.0005", True)  # 1e-4 relative tolerance


def test_math_intervals_compare_open_and_closed_ends_equal():
    assert rm.judge("\\boxed{(2,5]}", "(2,5)") == ("(2,5]", True)
    assert rm.judge("\\boxed{[2,5)}", "[2,5]") == ("[2,5)", True)
    assert rm.judge("\\boxed{[2,5]}", "(2,5)") == ("[2,5]", False)  # opening brackets are compared


def test_math_caret_is_xor_and_latex_is_never_parsed_as_latex():
    assert rm.judge("\\boxed{2^3}", "1") == ("2^3", True)  # 2 XOR 3
    assert rm.judge("\\boxed{2^{10}}", "1024") == ("2^{10}", False)
    assert rm.judge("\\boxed{\\frac{1}{4}}", "0.25") == ("\\frac{1}{4}", False)  # parse_latex never ran


def test_math_fbox_is_found_then_rejected():
    assert rm.judge("so \\fbox{5}", "5") == (None, False)


def test_math_answer_marker_beats_the_box():
    assert rm.judge("The answer is: 5.\nMore text \\boxed{7}", "5") == ("5", True)


@pytest.mark.parametrize("output,gold", [
    ("\\boxed{2\\sqrt}", "2\\sqrt{2}"),  # an answer ending in \sqrt
    ("The answer is: 3\\frac", "3"),  # ... or in \frac
    ("\\boxed{5}", "\\sqrt"),  # the gold is normalised by the same code
])
def test_math_trailing_sqrt_aborts_the_released_evaluation(output, gold):
    """The released code raises IndexError out of `is_equiv` and its whole evaluation stops. The
    port raises `ReleasedEvaluationAborts` from the rules; the sandboxed tool makes that item a
    failure whose detail names it, so the caller never crashes (checked below when bwrap exists)."""
    with pytest.raises(rm.ReleasedEvaluationAborts, match="IndexError"):
        rm.judge(output, gold)


def test_math_trailing_sqrt_through_the_sandbox_never_crashes_the_caller():
    _skip_without_sandbox()
    outputs, golds = ["\\boxed{2\\sqrt}", "\\boxed{5}"], [Gold("2\\sqrt{2}"), Gold("5")]
    s1, s2 = get_judge("released", "math")(outputs, golds)
    assert (s1.correct, "IndexError" in s1.detail) == (False, True)
    assert (s2.parsed, s2.correct) == ("5", True)


@pytest.mark.parametrize("output", ["The answer is 2", "The answer is (2)", "Answer: 2", "2", "(2) is right"])
def test_arc_numeric_labels_are_never_correct(output):
    assert choice(output, "2", labels=("1", "2", "3", "4")) == (None, False)


def test_arc_seeded_fallback_is_always_the_same_guess():
    assert choice("not sure.", "A", 4) == (None, True)
    assert choice("not sure.", "B", 4) == (None, False)
    assert choice("not sure.", "C", 3) == (None, True)
    assert choice("not sure.", "A", 5) == (None, True)


def test_arc_fallback_leaves_the_callers_rng_alone():
    random.seed(7)
    expected = random.random()
    random.seed(7)
    choice("not sure.", "A")
    assert random.random() == expected


def test_arc_first_answer_wins_and_words_read_as_letters():
    assert choice("The answer is B. Wait, actually the answer is C.", "C") == ("B", False)
    assert choice("the answer is Always", "A") == ("A", True)  # no word boundary after the letter
    assert choice("I think so.", "B") == ("I", False)  # the pronoun is option I


# --- code: the program the released evaluation runs -----------------------------------------------

class Item:
    def __init__(self, prompt="", entry_point="", setup="", prefix="", tests="", solution=""):
        self.prompt, self.entry_point, self.setup, self.prefix = prompt, entry_point, setup, prefix
        self.tests, self.solution = tests, solution


STUB = 'def add(a, b):\n    """Add."""\n'


def test_humaneval_is_prompt_plus_completion_cut_at_the_first_fence():
    item = Item(prompt=STUB, entry_point="add", prefix=STUB)
    assert build_released_program("    return a + b\n```\nMore text", item) == STUB + "    return a + b\n"
    fenced = "Sure:\n```python\ndef add(a, b):\n    return a + b\n```\n```python\nprint(1)\n```"
    assert build_released_program(fenced, item) == STUB + "def add(a, b):\n    return a + b\n"
    assert completion_of("no fence at all") == "no fence at all"


def test_humaneval_115_gets_the_plus_prompt():
    stub = 'def max_fill(grid, capacity):\n    import math\n    """Doc."""\n'
    prog = build_released_program("    return 0\n", Item(prompt=stub, entry_point="max_fill", prefix=stub))
    assert prog == 'import math\ndef max_fill(grid, capacity):\n    """Doc."""\n    return 0\n'


MBPP = Item(prompt="Write a function to add two numbers.",
            tests="assert add(1, 2) == 3\nassert add(0, 0) == 0",
            solution="def add(a, b):\n  return a + b", setup="")
HEAD = '"""\nWrite a function to add two numbers.\nassert add(1, 2) == 3\n"""'


def test_mbpp_entry_point_from_the_reference_and_the_first_assert():
    assert mbpp_entry_point(MBPP.solution, "assert add(1, 2) == 3") == "add"
    assert mbpp_entry_point("", "assert set(similar(1)) == set()") == "similar"


def test_mbpp_is_sanitised_as_released():
    """Expected programs checked against fishfarm's sanitization.py when written."""
    keep = "```python\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\nassert add(1,2)==3\n```"
    assert build_released_program(keep, MBPP) == HEAD + "\n\ndef add(a, b):\n    return a + b"
    # a 2- or 3-space body has no '    return ': the function is dropped
    assert build_released_program("def add(a, b):\n  return a + b\n", MBPP) == HEAD
    assert build_released_program("def add(a, b):\n   s = a + b\n   return s\n", MBPP) == HEAD
    # prose before the function stays (a syntax error when run)
    prose = build_released_program("Here is the code:\ndef add(a,b):\n    return a+b\n", MBPP)
    assert prose == HEAD + "\n\nHere is the code:\ndef add(a,b):\n    return a+b"


@pytest.mark.parametrize("output,completion", [
    ("    return a + b\n```\nMore text", "    return a + b\n"),  # closes a continuation
    ("```\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),  # opens at the start
    ("Here it is:\n```\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),  # prose, then a block
    ("    x = 1\n```\nthen\n```python\ny\n```", "    x = 1\n"),  # a continued body, then more blocks
    ("Sure.\n```py\nz = 2\n", "z = 2\n"),  # unterminated block
])
def test_completion_drops_only_an_opening_fence(output, completion):
    assert completion_of(output) == completion
