"""The released MATH scorer, ported line for line: runs inside the sandbox (stdlib and sympy only).

Source: SakanaAI/self-adaptive-llms @ 03a41aed1cfc57276e72ad5a42845a04b356db1e,
`evaluation/fishfarm/fishfarm/tasks/competation_math.py` (cited below as `cm.py:LINES`), as driven
by `LatexFormatMathTask.evaluate` (cm.py:366-379): `prediction = extract_ans(output)`,
`correct = is_equiv(sample.answer, prediction)` (gold first). It calls sympy's `parse_expr`, which
`eval`s text derived from the model's output, hence the sandbox (t2core.scoring.isolated).

Defects kept on purpose (they move the paper's MATH numbers; docs/scoring.md):
- the percent rule: a number equals the gold, the gold / 100 or the gold * 100 (1e-4 tolerance);
- intervals: when the gold is wholly in brackets and the answer opens with the same bracket, all
  brackets are stripped before a string compare, so the closing bracket is never compared: the gold
  (2,5) matches (2,5] and the gold [2,5] matches [2,5) (open and closed ends compare equal);
- `^` is Python's XOR under `parse_expr` (2^3 is 1); LaTeX is never parsed as LaTeX (see `_parse`);
- `\\fbox{...}` is found by `last_boxed_only_string` and then rejected by `remove_boxed`;
- "The answer is: " anywhere wins over a box, and the text after it is taken up to ".\\n";
- a string ending in `\\sqrt` or `\\frac` raises IndexError in `_strip_string`, which `is_equiv`
  does not catch, so the released evaluation aborts: `judge` raises `ReleasedEvaluationAborts`
  (the sandboxed tool turns it into a failed item whose detail says so: the caller never crashes);
- no timeout: a pathological expression hangs the released scorer (the sandbox's limits end it).
"""

from __future__ import annotations

from math import isclose
from typing import Any

from sympy import N, simplify
from sympy.parsing.sympy_parser import parse_expr

SOURCE = ("SakanaAI/self-adaptive-llms@03a41aed evaluation/fishfarm/fishfarm/tasks/"
          "competation_math.py:13-335,366-379")


class ReleasedEvaluationAborts(Exception):
    """The released code raises here and its whole MATH evaluation stops (no verdict at all)."""


def _fix_fracs(string: str) -> str:
    """cm.py:13-42, verbatim. Defect kept: a trailing `\\frac` raises IndexError (substr[0] of '')."""
    substrs = string.split("\\frac")
    new_str = substrs[0]
    if len(substrs) > 1:
        substrs = substrs[1:]
        for substr in substrs:
            new_str += "\\frac"
            if substr[0] == "{":
                new_str += substr
            else:
                try:
                    assert len(substr) >= 2
                except AssertionError:
                    return string
                a = substr[0]
                b = substr[1]
                if b != "{":
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}{" + b + "}" + post_substr
                    else:
                        new_str += "{" + a + "}{" + b + "}"
                else:
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}" + b + post_substr
                    else:
                        new_str += "{" + a + "}" + b
    string = new_str
    return string


def _fix_a_slash_b(string: str) -> str:
    """cm.py:45-57, verbatim: 'a/b' of two integers becomes \\frac{a}{b}."""
    if len(string.split("/")) != 2:
        return string
    a: str = string.split("/")[0]
    b: str = string.split("/")[1]
    try:
        a_int: int = int(a)
        b_int: int = int(b)
        assert string == f"{a_int}/{b_int}"
        new_string = "\\frac{" + str(a) + "}{" + str(b) + "}"
        return new_string
    except (AssertionError, ValueError):
        return string


def _remove_right_units(string: str) -> str:
    """cm.py:60-66, verbatim. Only '\\text{ ' (with a space) is a unit; two of them assert."""
    if "\\text{ " in string:
        splits = string.split("\\text{ ")
        assert len(splits) == 2
        return splits[0]
    else:
        return string


def _fix_sqrt(string: str) -> str:
    """cm.py:69-81, verbatim. Defect kept: a trailing `\\sqrt` raises IndexError (split[0] of '')."""
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            a = split[0]
            new_substr = "\\sqrt{" + a + "}" + split[1:]
        else:
            new_substr = "\\sqrt" + split
        new_string += new_substr
    return new_string


def _strip_string(string: str) -> str:
    """cm.py:84-129, verbatim (Hendrycks et al.'s normalisation; 'x=' prefixes of <= 2 chars go)."""
    string = string.replace("\n", "")
    string = string.replace("\\!", "")
    string = string.replace("\\\\", "\\")
    string = string.replace("tfrac", "frac")
    string = string.replace("dfrac", "frac")
    string = string.replace("\\left", "")
    string = string.replace("\\right", "")
    string = string.replace("^{\\circ}", "")
    string = string.replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace(r"\\%", "")
    string = string.replace(r"\%", "")
    string = string.replace(" .", " 0.")
    string = string.replace("{.", "{0.")
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2:
        if len(string.split("=")[0]) <= 2:
            string = string.split("=")[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    string = _fix_a_slash_b(string)
    return string


def is_digit(s: bool | float | str) -> bool:
    """cm.py:132-137, verbatim: commas are dropped before float() ('1,2' is 12)."""
    try:
        float(str(s).replace(",", ""))
        return True
    except ValueError:
        return False


def _parse(s: str) -> Any:
    """cm.py:141-147 tries `parse_latex`, then `parse_expr`, else keeps the string.

    In the released environment `parse_latex` always raised ImportError, which that `except
    Exception` swallowed: requirements.txt:16 pins hydra-core==1.3.2, which pins
    antlr4-python3-runtime==4.9.*, and sympy >= 1.12 refuses any runtime but 4.11. So only
    `parse_expr` (Python syntax, `^` as XOR, LaTeX a syntax error) ever ran; the port calls only it,
    which keeps verdicts independent of whichever antlr4 the t2 venv holds (math-verify pins one).
    """
    try:
        return parse_expr(s)
    except Exception:
        pass
    return s


def symbolic_equal(a: str, b: str) -> bool:
    """cm.py:140-163, verbatim but for `_parse` (above): simplify(a - b) == 0, else N() within 1e-3."""
    a = _parse(a)
    b = _parse(b)
    try:
        if simplify(a - b) == 0:
            return True
    except Exception:
        pass
    try:
        if isclose(N(a), N(b), rel_tol=1e-3):
            return True
    except Exception:
        pass
    return False


def math_equal(prediction: bool | float | str, reference: float | str, include_percentage: bool = True,
               is_close: bool = True) -> bool:
    """cm.py:166-245, verbatim. Defects kept: the percent rule (reference/100, reference, reference*100
    with rel_tol 1e-4); brackets stripped when `prediction` is wholly bracketed and `reference` does
    not open with the other kind, then every {}() removed before a string compare (so (2,5) equals
    (2,5]); element-wise tuples; then `symbolic_equal`."""
    try:
        if is_digit(prediction) and is_digit(reference):
            prediction = float(str(prediction).replace(",", ""))
            reference = float(str(reference).replace(",", ""))
            if include_percentage:
                gt_result = [reference / 100, reference, reference * 100]
            else:
                gt_result = [reference]
            for item in gt_result:
                try:
                    if is_close:
                        if isclose(item, prediction, rel_tol=1e-4):
                            return True
                    else:
                        if item == prediction:
                            return True
                except Exception:
                    continue
            return False
    except Exception:
        pass

    if not prediction and prediction not in [0, False]:
        return False

    reference = str(reference).strip()
    prediction = str(prediction).strip()

    pred_str, ref_str = prediction, reference
    if (
        prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")
    ) or (
        prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")
    ):
        pred_str = pred_str.strip("[]()")
        ref_str = ref_str.strip("[]()")
    for s in ["{", "}", "(", ")"]:
        ref_str = ref_str.replace(s, "")
        pred_str = pred_str.replace(s, "")
    if pred_str == ref_str:
        return True

    if (
        (prediction.startswith("[") and prediction.endswith("]"))
        and (reference.startswith("[") and reference.endswith("]"))
        or (prediction.startswith("(") and prediction.endswith(")"))
        and (reference.startswith("(") and reference.endswith(")"))
    ):
        pred_parts = prediction[1:-1].split(",")
        ref_parts = reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts):
            if all([math_equal(pred_parts[i], ref_parts[i], include_percentage, is_close)
                    for i in range(len(pred_parts))]):
                return True

    if symbolic_equal(prediction, reference):
        return True

    return False


def is_equiv(str1: str | None, str2: str | None) -> bool:
    """cm.py:248-259, verbatim. Called as is_equiv(gold, prediction), so in `math_equal` the gold is
    the 'prediction' and the model's answer the 'reference'. IndexError is not caught (see above)."""
    if str1 is None and str2 is None:
        return True
    if str1 is None or str2 is None:
        return False

    try:
        ss1 = _strip_string(str1)
        ss2 = _strip_string(str2)
        return math_equal(ss1, ss2) or ss1 == ss2
    except (AssertionError, TypeError, ValueError):
        return math_equal(str1, str2) or str1 == str2


def last_boxed_only_string(string: str) -> str | None:
    """cm.py:262-289, verbatim: the last '\\boxed' (else '\\fbox') through its balanced braces."""
    idx = string.rfind("\\boxed")
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None

    i = idx
    right_brace_idx: int | None = None

    num_left_braces_open = 0
    while i < len(string):
        if string[i] == "{":
            num_left_braces_open += 1
        if string[i] == "}":
            num_left_braces_open -= 1
            if num_left_braces_open == 0:
                right_brace_idx = i
                break
        i += 1

    if right_brace_idx is None:
        retval = None
    else:
        retval = string[idx : right_brace_idx + 1]

    return retval


def remove_boxed(s: str | None) -> str | None:
    """cm.py:292-302, verbatim. Defect kept: only '\\boxed{' is removed, so an '\\fbox{..}' is None."""
    left = "\\boxed{"
    if s is None:
        return None
    else:
        try:
            assert s[: len(left)] == left
            assert s[-1] == "}"
            return s[len(left) : -1]
        except (AssertionError, TypeError, ValueError):
            return None


def extract_ans(completion: str) -> str | None:
    """cm.py:321-335, verbatim: after the last 'The answer is: ' up to '.\\n' (one trailing '.' off),
    else the last box."""
    split_ans = completion.split("The answer is: ")
    if len(split_ans) > 1:
        ans = split_ans[-1]
        extract_ans_temp = ans.split(".\n")[0]
        extract_ans_temp = extract_ans_temp.strip()
        if len(extract_ans_temp) > 0 and extract_ans_temp[-1] == ".":
            extract_ans = extract_ans_temp[0:-1]
        else:
            extract_ans = extract_ans_temp
        extract_ans = extract_ans.strip()
        return extract_ans
    else:
        return remove_boxed(last_boxed_only_string(completion))


def judge(output: str, gold: str | None) -> tuple[str | None, bool]:
    """(prediction, correct) as `LatexFormatMathTask.evaluate` computes them (cm.py:368-378).

    `gold` is the released `sample.answer` (tasks/math.py:61: the last box of the solution, by the
    same two functions above). Where the released code raises out of `is_equiv` (IndexError from a
    trailing `\\sqrt` or `\\frac`, in the gold or the answer), its evaluation aborts with no verdict:
    this raises `ReleasedEvaluationAborts` naming the exception and the parsed answer.
    """
    prediction = extract_ans(output)
    try:
        correct = is_equiv(gold, prediction)
    except Exception as e:
        raise ReleasedEvaluationAborts(
            f"the released code raises {type(e).__name__} here and its evaluation aborts "
            f"(parsed {prediction!r})") from e
    return prediction, bool(correct)
