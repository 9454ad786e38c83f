"""t2's GSM8K judge (kind `number`): the final number the output states, compared by value.

Which number: the text after the last answer marker ('####', 'answer is', 'answer:'), so a
self-correction wins; in it, the result of a written-out sum ('18 - 2 = 16' is 16, the number
after the last '='), else its first number. With no marker, the last number of the output.
A correction after the marker ('Hmm, actually ... so she has 20 left') moves the answer to the
last number after the correction; a marker cut off before its number (a loop at the token limit)
leaves the one before it; two numbers offered ('between 24 and 25') are no answer. With no marker,
an output that ends cut off (on an operator or a connecting word) or in a loop (its last line
repeats an earlier one) states nothing, and a concluding last line ('Therefore, Tom has 45 apples
left after ...') states the first number after its 'therefore'; else the last number counts.
What a number is: a sign (also U+2212), an optional '$', digits grouped by commas or by spaces in
threes ('1,200', '1 000', LaTeX's '1{,}200'), a decimal part, a fraction 'a/b' (exact: '3/4' is
0.75, never 3), a mixed number '1 1/2', a scale word ('1.2 million'), 'N dollars and M cents', or a
number word up to the nineties ('twelve', 'twenty-four').
Equality is exact (fractions.Fraction), so '0.50' equals '0.5' and '3.0' equals '3'.
"""

from __future__ import annotations

import re
from fractions import Fraction

from t2core.scoring.base import Gold, Score, register_judge

_MIXED = r"\d+\s+\d+\s*/\s*\d+(?![\d/])"
_GROUPED = r"\d{1,3}(?:(?:,|[ \u00a0\u202f\u2009])\d{3})+(?![\d,])"
_PLAIN = r"\d+(?:\.\d+)?(?:\s*/\s*\d+)?"
_SCALE = {"thousand": 1000, "million": 10**6, "billion": 10**9}
_NUMBER = re.compile(rf"(?<![\w.])([-\u2212]?)\s?\$?\s?({_MIXED}|(?:{_GROUPED})(?:\.\d+)?|{_PLAIN})"
                     rf"(?:\s+({'|'.join(_SCALE)})\b)?", re.IGNORECASE)
_MARKER = re.compile(r"####|answer\s*(?:is|:)|final answer\W*\n", re.IGNORECASE)
_CONCLUSION = re.compile(r"\b(?:therefore|thus|hence|so|in total|altogether)\b", re.IGNORECASE)
_CORRECTION = re.compile(r"\b(?:wait|actually|correction|i made (?:a|an) (?:mistake|error)|i forgot|oops|"
                         r"let me re-?(?:calculate|compute|do))\b", re.IGNORECASE)
_CUT = re.compile(r"(?:[=+\-\u2212×*/:,(]|\b(?:is|are|which|and|of|the|so|then|to|by|a|an))\s*$", re.IGNORECASE)
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_WORD = re.compile(rf"\b({'|'.join(_TENS)})(?:[- ]({'|'.join(_UNITS[1:10])}))?\b|\b({'|'.join(_UNITS)})\b",
                   re.IGNORECASE)


def _clean(text: str) -> str:
    """LaTeX and money spelled out, as plain numbers: 1{,}200, \\$, '8 dollars and 50 cents'."""
    text = text.replace("{,}", ",").replace("\\$", "$").replace("\\!", "")
    text = re.sub(r"(?<=\d)\\,(?=\d{3})", ",", text)
    return re.sub(r"(\d+)\s*dollars?\s+and\s+(\d{1,2})\s*cents?",
                  lambda m: f"{m.group(1)}.{int(m.group(2)):02d}", text, flags=re.IGNORECASE)


def _value(m: re.Match) -> Fraction | None:
    body = m.group(2)
    try:
        if re.fullmatch(_MIXED, body):
            whole, frac = body.split(None, 1)
            v = int(whole) + Fraction(frac.replace(" ", ""))
        else:
            v = Fraction(re.sub(r"[,\s\u00a0\u202f\u2009]", "", body))
    except (ValueError, ZeroDivisionError):
        return None
    if m.group(3):
        v *= _SCALE[m.group(3).lower()]
    return -v if m.group(1) else v


def _numbers(text: str) -> list[Fraction]:
    out = [_value(m) for m in _NUMBER.finditer(_clean(text))]
    return [v for v in out if v is not None]


def _word_number(text: str) -> Fraction | None:
    m = _WORD.search(text)
    if m is None:
        return None
    if m.group(3):
        return Fraction(_UNITS.index(m.group(3).lower()))
    return Fraction(_TENS[m.group(1).lower()] + (_UNITS.index(m.group(2).lower()) if m.group(2) else 0))


def _stated(seg: str) -> Fraction | None:
    """The number a marker's line states: the result of a written-out sum, else its first number;
    none where it offers two ('between 24 and 25', '14 or 15')."""
    if re.search(r"\b(?:between|or)\b", seg) and len(set(_numbers(seg))) > 1:
        return None
    if "=" in seg:
        after = _numbers(seg.rsplit("=", 1)[1])
        if after:
            return after[0]
    nums = _numbers(seg)
    return nums[0] if nums else _word_number(seg)


def _unfinished(text: str) -> bool:
    lines = [ln.strip() for ln in text.strip().split("\n") if ln.strip()]
    if not lines:
        return True
    last = lines[-1].rstrip("* ")
    return bool(_CUT.search(last)) or any(ln != last and ln.startswith(last) for ln in lines[:-1])


def final_number(text: str) -> Fraction | None:
    hits = list(_MARKER.finditer(text))
    if not hits:
        if _unfinished(text):
            return None
        last = [ln for ln in text.strip().split("\n") if ln.strip()][-1]
        concl = list(_CONCLUSION.finditer(last))
        nums = _numbers(last[concl[-1].end():]) if concl else []
        if nums:  # 'Therefore, Tom has 45 apples left after giving 5 to each of 3 friends.'
            return nums[0]
        nums = _numbers(text)
        return nums[-1] if nums else None
    for hit in reversed(hits):  # the last marker, unless a loop cut it off before its number
        rest = text[hit.end():].lstrip(" \t*:")
        lines = rest.split("\n")
        first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
        if first is not None:
            break
    else:
        return None
    after = "\n".join(lines[first + 1:])
    fix = _CORRECTION.search(after)
    if fix:
        nums = _numbers(after[fix.end():])
        if nums:
            return nums[-1]
    return _stated(lines[first])


def show(v: Fraction | None) -> str | None:
    if v is None:
        return None
    return str(v.numerator) if v.denominator == 1 else str(float(v)) if 10**9 % v.denominator == 0 else str(v)


def gold_value(gold: str) -> Fraction | None:
    nums = _numbers(gold)
    return nums[0] if len(nums) == 1 else None


def judge_number(outputs: list[str], golds: list[Gold]) -> list[Score]:
    out = []
    for text, gold in zip(outputs, golds, strict=True):
        got, want = final_number(text), gold_value(gold.answer)
        detail = "" if got is not None else "no number in the output"
        out.append(Score(show(got), got is not None and want is not None and got == want, detail))
    return out


register_judge("t2", "number", judge_number, source="t2core/scoring/t2_number.py")
