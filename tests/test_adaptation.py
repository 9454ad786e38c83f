"""Two-pass adaptation end to end on the tiny model (paper §3.3): the recorded operations, the
classification task's data, a killed CEM search resumed, the reports' clear messages."""

import pytest

from catalog import Catalog
from catalog.execute import execute
from t2core.adapt.cem import CEMConfig
from t2core.adapt.fewshot import FewShotConfig
from t2core.evaluate import EvalConfig
from t2core.profiles import get_profile
from t2core.sampling import GenerationConfig
from t2core.tasks import get_task
from t2ops import adaptation, evaluation, fewshot, training
from t2ops.model import ident_of
from t2ops.operation import Hooks
from tests.conftest import catalog_rows, t2_cli, t2_inproc


def test_the_dispatch_task_never_reads_a_test_split(data_dir):
    task = get_task("dispatch")
    assert task.splits == ("train", "valid")
    test_ids = set()
    for name in ("gsm8k", "mbpp", "arc_easy", "arc_easy_cloze", "math", "humaneval", "arc_challenge"):
        test_ids |= {s.id for s in get_task(name).load("test", data_dir).samples}
    seen = {}
    for split in ("train", "valid"):
        ds = task.load(split, data_dir)
        src = [s.id.split(":", 1)[1] for s in ds.samples]
        assert not set(src) & test_ids, split
        cats = [s.answer for s in ds.samples]
        assert cats[:3] == ["math", "code", "reasoning"]
        assert {c: cats.count(c) for c in set(cats)} == {c: len(cats) // 3 for c in ("math", "code", "reasoning")}
        seen[split] = set(src)
    assert not seen["train"] & seen["valid"]


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory, data_dir):
    """Experts for math and reasoning and a classification expert, trained with the tiny profile."""
    home = tmp_path_factory.mktemp("adapt-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("T2_HOME", str(home))
    prof = get_profile("tiny")
    cat = Catalog(home / "catalog.duckdb")
    ids = {t: execute(training.OP, training.TrainRequest(prof.rl_config(t), data_dir=str(data_dir)), tiny, cat).expert_id
           for t in ("gsm8k", "arc_easy_cloze")}
    ids["dispatch"] = execute(training.OP, training.TrainRequest(prof.cls_config(), data_dir=str(data_dir)), tiny,
                                   cat).expert_id
    yield home, ids
    mp.undo()


def _req(ids, data_dir, strategy, **kw):
    ev = EvalConfig("arc_challenge_cloze", limit=6, generation=GenerationConfig(max_new_tokens=4, batch_size=4))
    few = FewShotConfig("arc_challenge_cloze", shots=3, cem=CEMConfig(population=4, generations=3, patience=5))
    return adaptation.AdaptRequest(ev, strategy, (ids["gsm8k"], ids["arc_easy_cloze"]), "choice",
                                   ids["dispatch"] if strategy == "cls-expert" else None, few, pass1_max_new_tokens=4,
                                   data_dir=str(data_dir), **kw)


@pytest.mark.parametrize("strategy", ["prompt", "cls-expert"])
def test_two_pass_records_each_decision_and_answers_as_the_chosen_expert_would(tiny, trained, data_dir, monkeypatch,
                                                                                strategy):
    home, ids = trained
    monkeypatch.setenv("T2_HOME", str(home))
    cat = Catalog(home / "catalog.duckdb")
    req = _req(ids, data_dir, strategy)
    out = execute(adaptation.OP, req, tiny, cat)
    assert not out.reused and out.n == 6 and out.metrics["pass1_seconds"] > 0 and out.metrics["pass2_seconds"] > 0
    rows = catalog_rows(home, f"SELECT idx, sample_id, output, decision, expert_ids FROM samples WHERE run_id = "
                              f"'{out.run_id}' ORDER BY idx")
    assert len(rows) == 6
    by_expert = {}
    for _idx, sid, output, decision, experts in rows:
        cat_word = decision.split("->")[0]
        assert cat_word in ("code", "math", "reasoning", "other")
        want = {"math": [ids["gsm8k"]], "reasoning": [ids["arc_easy_cloze"]]}.get(cat_word, [])
        assert experts == want and (decision.endswith(want[0]) if want else "->" not in decision)
        by_expert.setdefault(tuple(experts), {})[sid] = output
    for experts, outputs in by_expert.items():  # pass 2 answered as a plain evaluation with that expert
        plain = execute(evaluation.OP, evaluation.EvalRequest(req.eval, experts[0] if experts else None,
                                                      data_dir=str(data_dir)), tiny, cat)
        got = dict(catalog_rows(home, f"SELECT sample_id, output FROM samples WHERE run_id = '{plain.run_id}'"))
        assert {s: got[s] for s in outputs} == outputs
    (strategy_col,) = catalog_rows(home, f"SELECT strategy FROM runs WHERE run_id = '{out.run_id}'")
    assert strategy_col == (strategy,)
    assert execute(adaptation.OP, req, tiny, cat).reused


def test_a_killed_search_resumes_from_its_last_generation(tiny, trained, data_dir, monkeypatch):
    home, ids = trained
    monkeypatch.setenv("T2_HOME", str(home))
    cat = Catalog(home / "catalog.duckdb")
    req = _req(ids, data_dir, "few-shot")
    seen = []

    def kill_after_first(st):
        seen.append(st.generation)
        if st.generation == 1:
            raise KeyboardInterrupt  # as a kill between generations: the checkpoint of generation 1 is on disk

    with pytest.raises(KeyboardInterrupt):
        execute(fewshot.OP, req.search(), tiny, cat, hooks=Hooks(on_generation=kill_after_first))
    search_id = fewshot.OP.plan(req.search(), ident_of(tiny)).run_id
    assert catalog_rows(home, f"SELECT status FROM runs WHERE run_id = '{search_id}'") == [("failed",)]
    resumed = []
    out = execute(adaptation.OP, req, tiny, cat, hooks=Hooks(on_generation=lambda st: resumed.append(st.generation)))
    assert seen == [1] and resumed[0] == 2  # generation 1 was not redone
    assert out.search.state.generation == len(out.search.state.history) == 3
    assert catalog_rows(home, f"SELECT count(*), min(status) FROM runs WHERE run_id = '{search_id}'") == [(1, "completed")]
    # its recorded time counts the generation run before the kill too
    gen_seconds = [h["seconds"] for h in out.search.state.history]
    assert all(t > 0 for t in gen_seconds) and out.search.seconds >= sum(gen_seconds)
    (cfg,) = catalog_rows(home, f"SELECT config_json FROM runs WHERE run_id = '{search_id}'")
    import json

    cfg = json.loads(cfg[0])
    train_ids = {s.id for s in get_task("arc_challenge_cloze").load("train", data_dir).samples}
    assert set(cfg["shots"]) <= train_ids and len(cfg["shots"]) == 3 and len(cfg["alpha"]) == 2
    mix = out.search.expert.header.config["mixture"]
    assert mix["experts"] == sorted([ids["gsm8k"], ids["arc_easy_cloze"]]) and mix["shots"] == cfg["shots"]
    decisions = catalog_rows(home, f"SELECT DISTINCT decision FROM samples WHERE run_id = '{out.run_id}'")
    assert decisions == [(f"task->{out.search.expert.id}",)]


def test_kill_9_in_the_middle_of_cem_then_rerun_resumes_without_duplicates(tiny, trained, data_dir):
    home, ids = trained
    args = ("adapt", "--strategy", "few-shot", "--task", "arc_challenge_cloze", "--profile", "tiny", "--limit", "3",
            "--experts", f"{ids['gsm8k']},{ids['arc_easy_cloze']}", "--shots", "2", "--data-dir", str(data_dir))
    env = {"T2_HOME": str(home / "kill9")}
    (home / "kill9").mkdir()
    import shutil

    shutil.copytree(home / "artifacts", home / "kill9" / "artifacts")  # the same experts, in this home's store
    killed = t2_cli(*args, env={**env, "T2_FAULT_AFTER": "cem-generation:1"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert catalog_rows(home / "kill9", "SELECT kind, status FROM runs WHERE kind = 'adapt'") == [("adapt", "running")]
    rerun = t2_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    gens = [line for line in rerun.stdout.splitlines() if line.startswith("CEM generation")]
    assert gens and gens[0].split()[2] == "2", rerun.stdout  # generation 1 was not redone
    assert catalog_rows(home / "kill9", "SELECT kind, status, count(*) FROM runs WHERE kind IN ('adapt', 'eval')"
                                        " GROUP BY ALL ORDER BY kind") == [("adapt", "completed", 1),
                                                                          ("eval", "completed", 1)]
    assert catalog_rows(home / "kill9", "SELECT count(*), count(DISTINCT idx) FROM samples") == [(3, 3)]


def test_adapt_and_report_errors_are_one_line(t2_home):
    bad = t2_inproc("adapt", "--strategy", "magic", "--task", "arc_challenge_cloze", "--profile", "tiny",
                    "--experts", "svf:00000000")
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    none = t2_inproc("adapt", "--strategy", "prompt", "--task", "arc_challenge_cloze", "--profile", "tiny")
    assert none.returncode == 2 and "0 stored experts for 'gsm8k'" in none.stderr and "t2 train --task gsm8k" in none.stderr
    for args in (("--table", "2"), ("--table", "3"), ("--figure", "6")):
        r = t2_inproc("report", *args)
        assert r.returncode == 2 and ("t2 adapt" in r.stderr or "full-paper" in r.stderr), r.stderr


def test_ask_answers_one_question_and_shows_both_passes(trained, monkeypatch):
    home, ids = trained
    monkeypatch.setenv("T2_HOME", str(home))
    for strategy in ("prompt", "cls-expert"):
        r = t2_inproc("ask", "What is 12 * 7?", "--strategy", strategy, "--profile", "tiny", "--formulation", "choice",
                      "--experts", f"{ids['gsm8k']},{ids['arc_easy_cloze']}", "--max-new-tokens", "4")
        assert r.returncode == 0, r.stderr
        head = r.stdout.splitlines()[0]
        assert head.startswith("category ") and ("-> expert svf:" in head or "-> base weights" in head)
        assert "pass 1 " in head and "pass 2 " in head
    few = t2_inproc("ask", "What is 12 * 7?", "--strategy", "few-shot", "--profile", "tiny",
                    "--experts", f"{ids['gsm8k']},{ids['arc_easy_cloze']}")
    assert few.returncode == 2 and "adapts to a task, not to one question" in few.stderr


def test_ia3_on_the_same_shots_sits_beside_few_shot_in_table_8(tiny, trained, data_dir, monkeypatch):
    import re

    home, ids = trained
    monkeypatch.setenv("T2_HOME", str(home))
    common = ("--task", "arc_challenge_cloze", "--data-dir", str(data_dir))
    few = t2_inproc("adapt", "--strategy", "few-shot", "--profile", "tiny", "--limit", "3", "--shots", "2",
                    "--experts", f"{ids['gsm8k']},{ids['arc_easy_cloze']}", *common)
    assert few.returncode == 0, few.stderr
    ia3 = t2_inproc("baseline", "--model", "tiny-random", "--method", "ia3", "--shots", "2", "--steps", "2",
                    "--batch-size", "2", *common)
    assert ia3.returncode == 0, ia3.stderr
    aid = re.search(r"ia3:[0-9a-f]{24}", ia3.stdout).group(0)
    ev = t2_inproc("eval", "--model", "tiny-random", "--expert", aid, "--limit", "3", "--batch-size", "4",
                   "--max-new-tokens", "8", *common)
    assert ev.returncode == 0, ev.stderr
    t8 = t2_inproc("report", "--table", "8", "--format", "csv")
    assert t8.returncode == 0, t8.stderr
    rows = [r.split(",") for r in t8.stdout.splitlines()]
    row = next(r for r in rows[1:] if r[1] == "arc_challenge_cloze" and r[2] == "2")
    assert row[rows[0].index("IA3 steps")] == "2" and row[rows[0].index("IA3 same shots")] != ""
    # the IA3 adapter was trained on exactly the search's shots
    import json

    from t2core.training.ntp import NTPConfig, plan_ntp

    searched = [json.loads(c)["shots"] for (c,) in catalog_rows(home, "SELECT config_json FROM runs WHERE kind = 'adapt'")]
    shots, _ = plan_ntp(tiny.weights_hash, NTPConfig(task="arc_challenge_cloze", method="ia3", shots=2, steps=2,
                                                     batch_size=2), str(data_dir))
    assert [s.id for s in shots.samples] in searched


def test_an_adapter_id_covers_the_task_version_and_the_training_text(data_dir, monkeypatch):
    """Issue 40: a task version bump, or a changed reference text, is another adapter (it was reused)."""
    from dataclasses import asdict

    from t2core.hashing import canonical_json, sha256_bytes
    from t2core.training.ntp import NTPConfig, adapter_id, plan_ntp

    cfg = NTPConfig(task="arc_easy", method="lora", train_limit=4)
    d = {k: v for k, v in asdict(cfg).items()
         if k not in ("shots", "shot_split", "svf_targets", "micro_batch_size", "split", "grad_checkpointing")}
    files = {"f": "abc"}
    want = sha256_bytes(canonical_json(["ntp", "w", d, ["abc"], {"task_version": "2", "text": "t"}]).encode())[:24]
    assert adapter_id("w", cfg, files, "2", "t") == want
    assert adapter_id("w", NTPConfig(task="arc_easy", method="lora", shots=3), files, "2", "t") != want
    svf = [adapter_id("w", NTPConfig(task="arc_easy", method="svf", svf_targets=t), files, "2", "t") for t in ("mlp", "attn")]
    assert len(set(svf)) == 2  # SVF-NTP's targets are part of what it is

    task = get_task("arc_easy")
    _, aid = plan_ntp("w", cfg, data_dir)
    monkeypatch.setattr(type(task), "version", "99")
    _, bumped = plan_ntp("w", cfg, data_dir)
    monkeypatch.setattr(type(task), "reference_completion", lambda self, s: f"The answer is {s.answer}.")
    _, reworded = plan_ntp("w", cfg, data_dir)
    assert len({aid, bumped, reworded}) == 3
