"""t2's MATH judge: the final answer compared with the gold as a value or an expression
(Hugging Face's math-verify, pinned with its antlr4 runtime), runs inside the sandbox.

Why math-verify: it parses LaTeX into sympy and decides equality the way a grader would across
forms (0.25 and \\frac{1}{4}, 2^{10} and 1024, \\sqrt{8} and 2\\sqrt{2}, sets in any order,
intervals with their brackets, units and degree signs aside). It evaluates text through sympy, so
it never runs in t2's own process (t2core.sandbox.tool). Its own per-call timeouts (signal.alarm)
bound a pathological expression; the tool's wall-clock and CPU limits bound the rest.
"""

from __future__ import annotations

import re

from .latex import final_answer, normalize

TIMEOUT_S = 5


_INEQ = re.compile(r"^\s*[a-zA-Z]\s*(<|>|\\le|\\leq|\\ge|\\geq|\\lt|\\gt)\s*(-?[^<>=]+?)\s*$")
_REPEAT = re.compile(r"(-?)(\d*)\.(\d*)\\overline\{(\d+)\}")


def _repeating(m: re.Match) -> str:
    """0.\\overline{3} -> \\frac{1}{3}: a repeating decimal as the fraction it is."""
    whole, fixed, rep = m.group(2) or "0", m.group(3), m.group(4)
    num = int(whole + fixed + rep) - int(whole + fixed)
    den = (10 ** len(rep) - 1) * 10 ** len(fixed)
    return f"{m.group(1)}\\frac{{{num}}}{{{den}}}"


def _interval(s: str) -> str:
    """A one-sided inequality of one variable ('x > 3') as its interval ('(3,\\infty)')."""
    m = _INEQ.match(s)
    if not m:
        return s
    op, v = m.group(1), m.group(2)
    if op in (">", "\\gt"):
        return f"({v},\\infty)"
    if op in ("\\ge", "\\geq"):
        return f"[{v},\\infty)"
    if op in ("<", "\\lt"):
        return f"(-\\infty,{v})"
    return f"(-\\infty,{v}]"


def _tidy(s: str) -> str:
    s = s.replace("°", "^\\circ").replace("\\!", "").strip()
    return _interval(_REPEAT.sub(_repeating, s))


def _percent(s: str) -> tuple[str, bool]:
    t = re.sub(r"\s*\\?%\s*$", "", s.strip())
    return t, t != s.strip()


def judge(output: str, gold: str) -> tuple[str | None, bool]:
    cand = final_answer(output)
    if cand is None or not cand.strip():
        return cand, False
    gold, gold_pct = _percent(gold)
    if gold_pct:  # a percent is compared as the number of percent: 10\% is 10 or 10\%, never 0.1
        cand = _percent(cand)[0]
    if normalize(cand) == normalize(gold):
        return cand, True
    from math_verify import LatexExtractionConfig, parse, verify

    cfg = [LatexExtractionConfig(boxed_match_priority=0)]
    g = parse(f"${_tidy(gold)}$", extraction_config=cfg, parsing_timeout=TIMEOUT_S)
    p = parse(f"${_tidy(cand)}$", extraction_config=cfg, parsing_timeout=TIMEOUT_S)
    if not g or not p:
        return cand, False
    return cand, bool(verify(g, p, timeout_seconds=TIMEOUT_S))
