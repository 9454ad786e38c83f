"""Reference verdicts of the paper's released scorers on the scoring stress set.

Run by hand, not in CI: CI has no copy of the released code. It imports the released fishfarm
package (SakanaAI/self-adaptive-llms, `evaluation/fishfarm`) and calls its tasks' own `evaluate`
with a stand-in model that returns each stress output, one item per call (so an item on which the
released code raises loses only its own verdict, recorded as "raises"). Golds are built as the
released task files build them: GSM8K `int(extract_answer_number(answer))` (tasks/gsm8k.py:64-66),
MATH the answer string as `sample.answer`, ARC the raw label and the choice texts as `options`.
It imports nothing of t2, so it runs in a scratch interpreter shaped like the released environment:

    python3.11 -m venv /tmp/relvenv
    /tmp/relvenv/bin/pip install sympy==1.13.1 antlr4-python3-runtime==4.9.3
    git --git-dir=<clone of SakanaAI/self-adaptive-llms> archive HEAD evaluation/fishfarm \
        | tar -x -C /tmp/released
    /tmp/relvenv/bin/python bench/released_reference.py --released-dir /tmp/released/evaluation/fishfarm

(antlr4 4.9.*: the released requirements.txt pins hydra-core==1.3.2, which pins it, so sympy's
`parse_latex` raises ImportError there as it did for the paper; sympy is unpinned there, 1.13.1 is
what torch of that time brought.) `fasttext` and `huggingface_hub`, imported at module level by the
GSM8K task but unused with `languages=[]`, are stubbed when missing. Output:
{"<id>": {"parsed": str | null, "correct": bool, "sha": str[, "raises": "<exception>"]}} for the kinds
number, math and choice; "sha" (`item_sha`) fingerprints the item judged, so a stress item edited
after this ran is caught (tests/test_scoring_released.py checks the port against this file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_released(released_dir: Path) -> tuple:
    pkg = released_dir / "fishfarm" if (released_dir / "fishfarm").is_dir() else released_dir
    if not (pkg / "tasks" / "competation_math.py").is_file():
        raise SystemExit(f"{released_dir}: not the released fishfarm package (evaluation/fishfarm)")
    for name in ("fasttext", "huggingface_hub"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.path.insert(0, str(pkg.parent))
    from fishfarm.models import GenerationResult, Model
    from fishfarm.tasks import ai2_arc, competation_math, language_restricted_math

    class Echo(Model):  # the "model": answers every request with the stress output
        def __init__(self, text: str) -> None:
            self.text = text

        def generate(self, requests):
            return [GenerationResult(request=r, generation=self.text) for r in requests]

    return Echo, language_restricted_math, competation_math, ai2_arc


def item_sha(row: dict) -> str:
    """What a verdict depends on, fingerprinted: the kind, the output, the gold and the options."""
    key = json.dumps([row["kind"], row["output"], row["gold"], row.get("choices") or []])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _timeout(signum, frame):
    raise TimeoutError("no verdict within the time limit (the released code has none)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--released-dir", type=Path, required=True)
    ap.add_argument("--stress", type=Path, default=ROOT / "tests/data/scoring_stress.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/data/scoring_stress_released.json")
    ap.add_argument("--timeout-s", type=int, default=60)
    args = ap.parse_args()
    echo, lrm, cm, arc = _import_released(args.released_dir)
    rows = [json.loads(ln) for ln in args.stress.read_text().splitlines() if ln.strip()]
    signal.signal(signal.SIGALRM, _timeout)
    out: dict[str, dict] = {}
    for row in rows:
        kind, text, gold = row["kind"], row["output"], row["gold"]
        if kind == "number":
            answer = lrm.extract_answer_number(gold)
            sample = lrm.MathSample(problem="", answer=int(answer) if answer is not None else None)
            task = lrm.LanguageRestrictedMathTask(samples=[sample], languages=[])
        elif kind == "math":
            task = cm.LatexFormatMathTask(samples=[cm.MathSample(problem="", answer=gold)])
        elif kind == "choice":
            task = arc.Ai2ArcTask(samples=[arc.Ai2ArcSample(question="", question_id=row["id"],
                                                            options=list(row["choices"]), answer=gold)])
        else:
            continue
        signal.alarm(args.timeout_s)
        try:
            detail = task.evaluate(echo(text)).sample_details[0]
            pred = detail["prediction"]
            parsed = None if pred is None else str(pred)
            out[row["id"]] = {"parsed": parsed, "correct": bool(detail["correct"]), "sha": item_sha(row)}
        except Exception as e:  # the released evaluation aborts here: record what it raised
            parsed = cm.extract_ans(text) if kind == "math" else None
            out[row["id"]] = {"parsed": parsed, "correct": False, "sha": item_sha(row),
                              "raises": f"{type(e).__name__}: {e}"}
        finally:
            signal.alarm(0)
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    import sympy

    raised = sum("raises" in v for v in out.values())
    print(f"{len(out)} verdicts ({raised} raised) -> {args.out}; python {sys.version.split()[0]}, "
          f"sympy {sympy.__version__}")


if __name__ == "__main__":
    main()
