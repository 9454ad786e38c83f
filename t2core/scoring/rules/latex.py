"""Where a MATH answer is in an output, and a string normal form for it (standard library only).

`final_answer`: the content of the last `\\boxed{}`/`\\fbox{}` (braces balanced); an output that
boxes nothing but states "The (final) answer is: X" gives X (a careful grader credits a clearly
stated final answer; paper §4.2 asks for the answer, the box is our prompt's convention).
`normalize`: the Hendrycks-style string normal form, used to compare answers that are not
values (words in `\\text{}`, choices); a `\\text{...}` is unwrapped, never deleted, so
`\\text{even}` and `\\text{odd}` stay apart.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"(?:final\s+)?answer\s*(?:is|:)\s*:?\s*", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) that closes, braces balanced; None if there
    is none. A box cut off at the end (a loop that ran into the token limit) leaves the one before."""
    while (idx := max(text.rfind("\\boxed"), text.rfind("\\fbox"))) >= 0:
        got = _box_at(text, idx)
        if got is not None:
            return got
        text = text[:idx]
    return None


def _box_at(text: str, idx: int) -> str | None:
    i = text.find("{", idx)
    if i < 0 or text[idx:i].strip() not in ("\\boxed", "\\fbox"):
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


def stated_answer(text: str) -> str | None:
    """What follows the last 'answer is' marker, to the end of its line, without the dressing
    (bold, $...$, \\( \\), a final full stop)."""
    hits = list(_MARKER.finditer(text))
    if not hits:
        return None
    rest = text[hits[-1].end():].split("\n", 1)[0].strip()
    rest = rest.strip("*").strip()
    m = re.fullmatch(r"\$+(.+?)\$+\.?|\\\((.+?)\\\)\.?|\\\[(.+?)\\\]\.?", rest)
    if m:
        rest = next(g for g in m.groups() if g is not None)
    rest = rest.rstrip(".").strip()
    return rest or None


def _hedged(text: str) -> bool:
    """The last two boxes offered as alternatives ('\\boxed{2} or \\boxed{3}'): no commitment."""
    idx = [m.start() for m in re.finditer(r"\\(?:boxed|fbox)\b", text)]
    if len(idx) < 2:
        return False
    a, b = last_boxed(text[:idx[-1]]), last_boxed(text)
    between = text[idx[-2]:idx[-1]]
    return a != b and "\n" not in between and re.search(r"\bor\b", between) is not None


def final_answer(text: str) -> str | None:
    """The answer an output commits to: its last box, else its last stated answer."""
    boxed = last_boxed(text)
    if boxed is not None:
        return None if _hedged(text) else boxed
    return stated_answer(text)


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


def normalize(s: str | None) -> str | None:
    """A string normal form of a MATH answer (Hendrycks et al.'s rules, with words kept)."""
    if s is None:
        return None
    s = s.strip().replace("\n", "").replace("\\!", "")
    s = s.replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("°", "").replace("\\$", "").replace("$", "")
    # trailing units after a value ("5 \text{ cm}"); a \text{} that is the whole answer stays
    s = re.sub(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z ]*\}(\^\d)?$", "", s).strip()
    s = re.sub(r"\\(?:text|mbox|mathrm)\{(.*?)\}", r"\1", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    m = re.match(r"^[a-zA-Z]\w{0,2}\s*=\s*(.+)$", s)  # "x = 5" -> "5"
    if m:
        s = m.group(1)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    s = s.rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?|-?\d+(\.\d+)?", s):
        s = s.replace(",", "")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
    return s
