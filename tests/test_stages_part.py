"""`t2 run --stages`: a part of a staged flow (issue 23: the qwen profile on a CPU in parts). The selected
stages run; the others are read back from the catalog or skipped; a selected stage that needs a skipped one
is listed as blocked, with what it needs; a later part finds the earlier one's runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, catalog_rows, t2_inproc


@pytest.fixture
def prefect_env(tmp_path, monkeypatch):  # an ephemeral Prefect API of this test's own
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def _run_flow(profile: str, stages: str | None = None, miniature_of: str | None = None) -> dict:
    """full-paper in its own process (Prefect's console logging cannot outlive pytest's captured streams
    in this one), its result back as JSON; `miniature_of`: register that profile's miniature there first."""
    code = ("import json, sys\n"
            "from flows.pipelines import full_paper_flow\n"
            + (f"from t2core.profiles import get_profile\nfrom t2core.profiles.miniature import miniature\n"
               f"from t2core.profiles.settings import register_profile\n"
               f"register_profile(miniature(get_profile({miniature_of!r})))\n" if miniature_of else "")
            + f"out = full_paper_flow(profile={profile!r}, stages={stages!r})\n"
            "print('RESULT ' + json.dumps(out, default=str))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))[7:])


def _first(run: dict) -> dict[str, dict]:
    """A run's steps by name, the first listing of each (the ablations list base again, as Cached)."""
    out: dict[str, dict] = {}
    for s in run["steps"]:
        out.setdefault(s["step"], s)
    return out


@pytest.mark.slow  # minutes on 2 cores: .ci/run runs it after the default suite
def test_a_part_runs_what_it_names_and_says_what_it_could_not(t2_home, prefect_env, data_dir):
    first = _run_flow("tiny", "eval:arc_easy_cloze*")
    steps = _first(first)
    assert steps["eval:arc_easy_cloze"]["state"] == "Completed"
    assert steps["train:arc_easy_cloze"]["state"] == "Skipped" and steps["train:gsm8k"]["state"] == "Skipped"
    assert steps["eval:arc_easy_cloze:svf"] == {"step": "eval:arc_easy_cloze:svf", "state": "Blocked",
                                                "seconds": 0.0, "note": "needs train:arc_easy_cloze"}
    assert "eval:gsm8k" in steps and steps["eval:gsm8k"]["state"] == "Skipped"
    assert not any(k.startswith(("adapt:", "transfer:", "few-shot")) for k in steps)  # they need the experts
    assert catalog_rows(t2_home, "SELECT kind, count(*) FROM runs GROUP BY kind ORDER BY kind") == [("eval", 1)]  # not even the SVD

    second = _run_flow("tiny", "train:arc_easy_cloze,eval:arc_easy_cloze:svf")
    steps = _first(second)
    assert steps["train:arc_easy_cloze"]["state"] == "Completed"
    assert steps["eval:arc_easy_cloze:svf"]["state"] in ("Completed", "Cached")  # a z = 1 expert is base's rows
    assert steps["eval:arc_easy_cloze"]["state"] == "Cached"  # the first part's run, read back
    assert not [s for s in steps.values() if s["state"] == "Blocked"]


def test_a_bad_stage_pattern_is_one_line_before_anything_starts(t2_home):
    r = t2_inproc("run", "full-paper", "--profile", "tiny", "--stages", "evals:*")
    assert r.returncode == 2 and "--stages 'evals:*': 'evals' is no kind of stage" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (t2_home / "catalog.duckdb").exists()
    r = t2_inproc("run", "svd", "--stages", "svd")
    assert r.returncode == 2 and "apply to the staged flows" in r.stderr


@pytest.mark.slow  # minutes on 2 cores: .ci/run runs it after the default suite
def test_the_qwen_profiles_stages_run_end_to_end_in_miniature(t2_home, prefect_env, data_dir):
    """The `qwen` profile's shape (issue 23), on tiny-random with 3 samples a slice: every stage it plans runs."""
    from t2core.profiles import get_profile

    qwen = get_profile("qwen")
    run = _run_flow("qwen-miniature", miniature_of="qwen")
    names = [s["step"] for s in run["steps"]]
    assert all(s["state"] in ("Completed", "Cached") for s in run["steps"])
    trains = [t.task for t in qwen.trains]
    expected = ["svd", *(f"train:{t}" for t in trains), *(f"baseline:lora:{t}" for t in trains),
                *(f"eval:{sl.task}" for sl in qwen.evals), *(f"eval:{t}:svf" for t in trains),
                *(f"eval:{t}:lora" for t in trains), "train:dispatch",
                "eval:arc_challenge_cloze:base",  # the one unseen slice not among the evaluations
                "eval:arc_challenge_cloze:lora", "eval:math:lora", "eval:humaneval:lora"]  # LoRAs of the same category
    for t in ("arc_challenge_cloze", "math"):  # the searched ones; HumanEval has no shots
        expected += [f"few-shot:{t}", f"few-shot-light:{t}", f"lora-pick:{t}"]
    expected += [f"adapt:{s}:{sl.task}" for sl in qwen.adapt.unseen for s in ("prompt", "cls-expert")]
    expected += [f"adapt:{s}:{t}" for t in ("arc_challenge_cloze", "math") for s in ("few-shot", "few-shot-light")]
    assert sorted(n for n in names if not n.endswith(":picked")) == sorted(expected)
