"""Each scoring scheme against the careful grader's verdicts on the two sets of outputs with golds
(tests/data/scoring_stress.jsonl, scoring_heldout.jsonl): agreement and false passes (docs/scoring.md).

    python bench/scoring_sets.py [--misses]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--misses", action="store_true", help="list t2's disagreements with the grader")
    args = ap.parse_args()
    from tests.test_scoring_t2 import judge_rows

    for name in ("scoring_stress.jsonl", "scoring_heldout.jsonl"):
        rows = [json.loads(line) for line in (ROOT / "tests" / "data" / name).read_text().splitlines() if line]
        for scheme in ("t2", "released"):
            got = judge_rows(scheme, rows)
            ok = sum(got[r["id"]].correct == r["truth"] for r in rows)
            fp = sum(got[r["id"]].correct and not r["truth"] for r in rows)
            print(f"{name:24} {scheme:9} agrees {ok}/{len(rows)} ({ok / len(rows):.3f})  false passes {fp}")
            if args.misses and scheme == "t2":
                for r in rows:
                    if got[r["id"]].correct != r["truth"]:
                        kind = "false pass" if got[r["id"]].correct else "miss"
                        print(f"    {kind}: {r['id']} ({r['class']}) read {got[r['id']].parsed!r}")


if __name__ == "__main__":
    main()
