"""The cloze judge (kind `cloze`, both schemes): the model picked a candidate by likelihood
(ARC cloze, the dispatch task), so there is nothing to interpret: the pick is right when its text
is the gold option's (two options with the same text both count as it). The released code has no
cloze task (the paper evaluates ARC by letters), so `released` uses the same rule, said here."""

from __future__ import annotations

from t2core.scoring.base import Gold, Score, register_judge


def judge_cloze(outputs: list[str], golds: list[Gold]) -> list[Score]:
    """`Gold.choices` are the item's candidates as the model saw them."""
    out = []
    for text, g in zip(outputs, golds, strict=True):
        hits = [lab for lab, c in zip(g.labels, g.choices, strict=True) if c.strip() == text.strip()]
        parsed = g.answer if g.answer in hits else (hits[0] if hits else None)
        out.append(Score(parsed, parsed == g.answer, "" if hits else "output is none of the candidates"))
    return out


register_judge("t2", "cloze", judge_cloze, source="t2core/scoring/cloze.py")
register_judge("released", "cloze", judge_cloze,
               source="t2core/scoring/cloze.py (no released counterpart: the released code scores ARC by letters)")
