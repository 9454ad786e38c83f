"""Answer extraction shared by the task families.

- numbers (GSM8K): the number after '####' / 'answer is', else the last number;
- choices (ARC): the chosen label, robust to 'Answer: B', '(B)', 'B. text', or the option text;
- MATH: the last `\\boxed{...}` with the usual normalisation (fractions, units, spacing);
- code: the first fenced code block, else the whole output.
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUM = r"-?\$?\d[\d,]*(?:\.\d+)?"


def _clean_number(s: str) -> str | None:
    s = s.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        val = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return str(val.numerator) if val.denominator == 1 else str(float(val))


def extract_number(text: str) -> str | None:
    for marker in (r"####\s*", r"answer is[:\s]*", r"answer:\s*"):
        m = re.findall(marker + r"\**\s*(" + _NUM + ")", text, flags=re.IGNORECASE)
        if m:
            return _clean_number(m[-1])
    nums = re.findall(_NUM, text)
    return _clean_number(nums[-1]) if nums else None


def numbers_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    ca, cb = _clean_number(a), _clean_number(b)
    if ca is None or cb is None:
        return False
    return abs(float(ca) - float(cb)) < 1e-6 * max(1.0, abs(float(cb)))


def extract_choice(text: str, labels: tuple[str, ...], choices: tuple[str, ...] = ()) -> str | None:
    """The label the output commits to, or None."""
    lab = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    t = text.strip()
    patterns = [
        rf"answer\s*(?:is|:)?\s*(?:option\s*)?[\(\[]?\**\s*({lab})\b",
        rf"^\**[\(\[]?({lab})[\)\].:\s]",
        rf"^\**({lab})\**$",
        rf"option\s*[\(\[]?({lab})\b",
        rf"[\(\[]({lab})[\)\]]",
    ]
    for pat in patterns:
        m = re.search(pat, t, flags=re.IGNORECASE | re.MULTILINE)
        if m:
            got = m.group(1)
            for label in labels:  # map case-insensitively back to the item's label
                if label.lower() == got.lower():
                    return label
    low = t.lower()
    hits = [lab_ for lab_, c in zip(labels, choices, strict=True) if c and c.lower() in low]
    if len(hits) == 1:
        return hits[0]
    m = re.search(rf"\b({lab})\b", t)  # last resort: first standalone label (case-sensitive)
    return m.group(1) if m else None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        m = re.match(r"\\boxed\s+([^\s$]+)", text[idx:])
        return m.group(1) if m else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}
    parts = s.split("\\frac")
    out = parts[0]
    for p in parts[1:]:
        out += "\\frac"
        if p.startswith("{") or len(p) < 2:
            out += p
            continue
        a, b, rest = p[0], p[1], p[2:]
        out += "{" + a + "}" + ("{" + b + "}" + rest if b != "{" else b + rest)
    return out


def _fix_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def normalize_math(s: str | None) -> str | None:
    """Normalise a MATH answer string so equivalent forms compare equal (Hendrycks et al. style)."""
    if s is None:
        return None
    s = s.strip().replace("\n", "").replace("\\!", "")
    s = s.replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "").replace("$", "")
    s = re.sub(r"\\text\{\s*[a-zA-Z ]*\}$", "", s).strip()  # trailing units
    s = re.sub(r"\\(?:text|mbox|mathrm)\{(.*?)\}", r"\1", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    m = re.match(r"^[a-zA-Z]\w{0,2}\s*=\s*(.+)$", s)  # "x = 5" -> "5"
    if m:
        s = m.group(1)
    s = _fix_sqrt(s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    s = s.rstrip(".")
    if re.fullmatch(r"-?[\d,]+(\.\d+)?", s):
        s = s.replace(",", "")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
    return s


def math_equal(pred: str | None, gold: str | None) -> bool:
    a, b = normalize_math(pred), normalize_math(gold)
    return a is not None and b is not None and a == b


def extract_code(text: str) -> str:
    blocks = re.findall(r"```(?:[Pp]ython3?|py)?[ \t]*\n(.*?)```", text, flags=re.DOTALL)
    if blocks:
        return max(blocks, key=lambda b: ("def " in b, len(b)))
    m = re.search(r"```(?:[Pp]ython3?|py)?[ \t]*\n(.*)$", text, flags=re.DOTALL)  # unterminated fence
    return (m.group(1) if m else text).strip("\n")
