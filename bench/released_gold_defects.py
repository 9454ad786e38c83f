"""How many GOLD answers of the shipped datasets each defect of the released scorers changes.

The released code (SakanaAI/self-adaptive-llms@03a41aed; t2's port: t2core/scoring/released_*.py)
applies its extraction to the golds too, so some items are judged against a wrong gold or cannot
be judged correct at all. Counted here on the data t2 reads (`load_split`, T2_DATA_DIR or
../shared/datasets), printed as a table for docs/scoring.md:

    python bench/released_gold_defects.py

- GSM8K (test; train = t2's train + valid, the whole file the RL reward is computed on): golds
  whose released number (`int(extract_answer_number(answer))`, tasks/gsm8k.py:64-66, applied to the
  file's raw answer text, commas included) differs from the true number, and why.
- ARC (test and train): items labelled 1-5 (never scorable), and items whose gold the seeded
  "random" fallback credits (A, or C with three options) whenever nothing is extracted.
- MATH and MATH-500 (test): the released gold (`remove_boxed(last_boxed_only_string(solution))`)
  against t2's; golds the percent rule widens (non-zero numbers: x/100 and 100x pass too); comma
  lists read as one number ('1, 2' is 12); wholly bracketed golds whose closing bracket is never
  compared (intervals); golds with '^' (never a power: `parse_expr`
  reads it as XOR, or fails on the braces); of them, those it reads as XOR; golds it cannot parse at all
  (compared as strings only); golds on which the released code raises (every item aborts).
MATH golds are trusted data, so the released rules (sympy's `parse_expr`) run on them here, in
this process, with a per-gold alarm; model text is never evaluated by this script.
"""

from __future__ import annotations

import json
import re
import signal
from fractions import Fraction
from pathlib import Path

from t2core.scoring.released_number import released_gold
from t2core.scoring.rules import released_math as rm
from t2core.tasks import load_split

_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")


def _raw_records(ds) -> list[dict]:
    path = Path(next(iter(ds.files)))
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def gsm8k(split_names: tuple[str, ...]) -> tuple[int, int, dict[str, int]]:
    """(golds, changed, {reason: count}) over the named t2 splits of one GSM8K file."""
    n = changed = 0
    why: dict[str, int] = {}
    for split in split_names:
        ds = load_split("gsm8k", split)
        raw = _raw_records(ds)
        for s in ds.samples:
            answer = raw[int(s.id.rsplit("/", 1)[1])]["answer"]
            final = answer.rsplit("####", 1)[1].strip()
            n += 1
            if Fraction(released_gold(answer)) != Fraction(s.answer):
                changed += 1
                reason = "comma" if "," in final else "minus" if final.startswith("-") else "decimal/other"
                why[reason] = why.get(reason, 0) + 1
    return n, changed, why


def arc(task: str, split: str) -> tuple[int, int, int]:
    """(items, numeric labels, gold equal to the seeded guess)."""
    ds = load_split(task, split)
    numeric = sum(s.labels[0].isdigit() for s in ds.samples)
    guessed = sum(s.answer == ("C" if len(s.choices) == 3 else "A") for s in ds.samples)
    return len(ds), numeric, guessed


def _alarm(signum, frame):
    raise TimeoutError


def _parses(s: str) -> str:
    """'num' | 'xor' | 'expr' | 'none': what `parse_expr` makes of a stripped gold."""
    signal.alarm(5)
    try:
        parsed = rm._parse(s)
    except TimeoutError:
        return "none"
    finally:
        signal.alarm(0)
    if isinstance(parsed, str):
        return "none"
    return "xor" if "^" in s else "expr"


def math(task: str) -> dict[str, int]:
    ds = load_split(task, "test")
    c = dict.fromkeys(("golds", "gold differs", "gold None (fbox etc.)", "percent rule",
                       "comma list = number",
                       "bracketed (closing unchecked)", "with '^' (no power)", "'^' as XOR",
                       "string-only compare", "raises"), 0)
    for s in ds.samples:
        c["golds"] += 1
        gold = rm.remove_boxed(rm.last_boxed_only_string(s.solution))
        if gold is None:
            c["gold None (fbox etc.)"] += 1
            continue
        if gold != s.answer:
            c["gold differs"] += 1
        try:
            ss = rm._strip_string(gold)
        except (AssertionError, TypeError, ValueError):
            ss = gold  # is_equiv's fallback: the unstripped strings
        except IndexError:
            c["raises"] += 1
            continue
        if rm.is_digit(ss):
            value = float(ss.replace(",", ""))
            c["percent rule"] += value != 0
            c["comma list = number"] += "," in ss and not _THOUSANDS.fullmatch(ss)
            continue
        if (ss.startswith("[") and ss.endswith("]")) or (ss.startswith("(") and ss.endswith(")")):
            c["bracketed (closing unchecked)"] += 1
        c["with '^' (no power)"] += "^" in ss
        kind = _parses(ss)
        c["'^' as XOR"] += kind == "xor"
        c["string-only compare"] += kind == "none"
    return c


def main() -> None:
    signal.signal(signal.SIGALRM, _alarm)
    print("GSM8K: golds whose released number differs from the true one")
    print(f"  {'split':<22}{'golds':>7}{'changed':>9}  why")
    for label, splits in (("test", ("test",)), ("train (train + valid)", ("train", "valid"))):
        n, changed, why = gsm8k(splits)
        print(f"  {label:<22}{n:>7}{changed:>9}  {', '.join(f'{k} {v}' for k, v in sorted(why.items()))}")
    print("\nARC: items the released scorer cannot credit, and golds its seeded guess credits")
    print(f"  {'task/split':<22}{'items':>7}{'numeric labels':>16}{'gold = seeded guess':>21}")
    for task in ("arc_challenge", "arc_easy"):
        for split in ("test", "train"):
            n, numeric, guessed = arc(task, split)
            print(f"  {task + '/' + split:<22}{n:>7}{numeric:>16}{guessed:>21}")
    print("\nMATH: golds each released-code rule changes (test splits)")
    rows = {task: math(task) for task in ("math", "math500")}
    print(f"  {'':<32}" + "".join(f"{t:>10}" for t in rows))
    for key in rows["math"]:
        print(f"  {key:<32}" + "".join(f"{rows[t][key]:>10}" for t in rows))


if __name__ == "__main__":
    main()
