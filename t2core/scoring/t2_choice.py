"""t2's ARC judge (kind `choice`): the option the output commits to, last commitment first.

Reading order, each step only when the one before finds nothing:
1. an explicit commitment: 'the answer is (B)', 'Answer: B', 'the correct option is B', 'option B',
   'B is correct/best' — the last one wins, so a self-correction counts; one that names two options
   ('Answer: B, D') or a label with another option's text ('B. oxygen', oxygen being A) is none;
2. a label set apart: '(B)', 'B.' or 'B)' opening a line, 'B' alone on a line — again the last;
3. the text of exactly one option (after the last answer marker, else anywhere);
4. bare standalone labels, when they all name the same option.
A truncated echo of the option list ('A. rock / B. water / C.') is removed first: it commits to
nothing. The letter 'a' followed by a word is the article ('The answer is a triangle'), and so is
a capital 'A' that opens a sentence; numeric labels (1-5) count only in explicit forms, never as
bare numbers of the reasoning. Labels are the item's own, compared case-insensitively.
"""

from __future__ import annotations

import re

from t2core.scoring.base import Gold, Score, register_judge

_CONNECTIVE = r"(?:because|since|as|is|was|would|will|or|and|nor|-|–|—)"


def _alt(labels: tuple[str, ...]) -> str:
    return "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))


def _as_label(got: str, after: str, labels: tuple[str, ...], bracketed: bool) -> str | None:
    """Map a matched label back to the item's; None where the letter is a word, not a label."""
    match = next((x for x in labels if x.lower() == got.lower()), None)
    if match is None or bracketed or got.isdigit():
        return match
    word_follows = re.match(rf"\s+(?!{_CONNECTIVE}\b)[A-Za-z]", after) is not None
    if got.lower() == "a" and word_follows:  # the article
        return None
    if got.islower() and (word_follows or re.match(r"\w", after)):
        return None
    return match


def _strip_echo(text: str, labels: tuple[str, ...], choices: tuple[str, ...]) -> str:
    """The output without the lines that repeat the option list (two or more such lines)."""
    lab = _alt(labels)
    lines = text.split("\n")
    echo = []
    for i, ln in enumerate(lines):
        m = re.match(rf"^\s*\**\(?({lab})[\).:]\**\s*(.*?)\s*$", ln)
        if m and m.group(1) in labels:
            opt = choices[labels.index(m.group(1))].strip().lower().rstrip(".")
            rest = m.group(2).strip().lower().rstrip(".")
            if opt.startswith(rest) if rest else True:
                echo.append(i)
    if len(echo) < 2:
        return text
    return "\n".join(ln for i, ln in enumerate(lines) if i not in set(echo))


def _last(patterns: list[str], text: str, labels: tuple[str, ...], choices: tuple[str, ...],
          bracketed: bool = False) -> tuple[int, str | None] | None:
    """(where, label) of the last commitment; label None where it names two options ('B, D') or
    pairs a label with another option's text ('B. oxygen', oxygen being A)."""
    best = None
    lab_alt = _alt(labels)
    for pat in patterns:
        for m in re.finditer(pat, text, flags=re.IGNORECASE | re.MULTILINE):
            after = text[m.end(1):]
            lab = _as_label(m.group(1), after, labels, bracketed or "(" in m.group(0) or "[" in m.group(0))
            if lab is None or (best is not None and m.start(1) <= best[0]):
                continue
            other = re.match(rf"\s*[\)\].]?\s*(?:,|/|&|\band\b|\bor\b)\s*[\(\[]?({lab_alt})(?![\w])", after)
            said = re.match(r"[\)\].:]?\**\s*([^\n]+)", after)
            text_of = said.group(1).strip().lower().rstrip(".") if said else ""
            names_other = any(text_of == c.strip().lower().rstrip(".") for x, c in zip(labels, choices, strict=True)
                              if x != lab and c.strip())
            ambiguous = (other is not None and other.group(1).lower() != lab.lower()) or names_other
            best = (m.start(1), None if ambiguous else lab)
    return best


def committed_label(text: str, labels: tuple[str, ...], choices: tuple[str, ...]) -> str | None:
    lab = _alt(labels)
    t = _strip_echo(text, labels, choices)
    strong = [
        rf"(?:answer|option|choice)\s*(?:is|:|would\s+be|should\s+be)\s*:?\s*(?:option\s*)?\**\s*[\(\[]?\s*"
        rf"({lab})(?![\w])",
        rf"\b(?:option|choice)\s*[\(\[]?({lab})(?![\w])",
        rf"(?<![\w])\(?({lab})\)?\s+is\s+(?:the\s+)?(?:best|correct|right)\b",
        rf"\b(?:i\s+(?:choose|pick|select)|it'?s)\s*[\(\[]?({lab})(?![\w])",
    ]
    hit = _last(strong, t, labels, choices)
    if hit is None:
        medium = [rf"[\(\[]({lab})[\)\]]", rf"^\s*\**({lab})[\).:]", rf"^\s*\**({lab})\**\s*$"]
        hit = _last(medium, t, labels, choices)
    if hit is not None:
        return hit[1]
    if re.search(r"\bnone of (?:the|these) (?:options|choices|answers)\b", t, flags=re.IGNORECASE):
        return None
    marker = list(re.finditer(r"answer\s*(?:is|:)", t, flags=re.IGNORECASE))
    for seg in ([t[marker[-1].end():]] if marker else []) + [t]:
        low = seg.lower()
        hits = [x for x, c in zip(labels, choices, strict=True)
                if c.strip() and re.search(rf"(?<![\w]){re.escape(c.strip().lower().rstrip('.'))}(?![\w])", low)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            return None
    if all(x.isdigit() for x in labels):
        return None
    bare = {m.group(1) for m in re.finditer(rf"(?<![\w'])({lab})(?![\w'])", t)
            if not (m.group(1) == "A" and re.match(rf"\s+(?!{_CONNECTIVE}\b)[a-z]", t[m.end():]))}
    return bare.pop() if len(bare) == 1 else None


def judge_choice(outputs: list[str], golds: list[Gold]) -> list[Score]:
    out = []
    for text, g in zip(outputs, golds, strict=True):
        got = committed_label(text, g.labels, g.choices)
        out.append(Score(got, got == g.answer, "" if got else "commits to no option"))
    return out


register_judge("t2", "choice", judge_choice, source="t2core/scoring/t2_choice.py")
