"""Prefect flows: the tiny profile end to end, resume after a crash, and a served deployment
triggered with `prefect deployment run` against a real local Prefect server."""

import csv
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request

import duckdb
import pytest

from tests.conftest import REPO, catalog_rows, t2_cli, t2_inproc

N_EVALS = 13  # tiny profile: six paper benchmarks + ARC-E cloze, four experts, LoRA-NTP + LoRA-PG, 3 samples each
N_TRAIN = 6  # SVF experts for gsm8k, mbpp, arc_easy, arc_easy_cloze; LoRA-NTP and LoRA-PG on arc_easy
# self-adaptation on the 3 unseen slices (math, humaneval, arc_challenge_cloze): base on the one not already
# evaluated, both LoRAs on each, prompt and cls-expert on each, on the two with a train split the few-shot
# (3 shots) and the light few-shot (2 shots, Table 10)
N_ADAPT_EVALS = 1 + 2 * 3 + 2 * 3 + 2 + 2
N_ADAPT_STEPS = 1 + 4 + 2 + N_ADAPT_EVALS  # + the cls-expert, four CEM searches (full and light) and two LoRA
# picks (the tiny profile evaluates every LoRA on the unseen slices, so the picked one needs no evaluation)
# transfer onto tiny-random-twin: its SVD, the ARC-Easy cloze expert moved with 3 controls, on ARC-Easy cloze and
# ARC-Challenge cloze base + 3 each, cross-model few-shot search + its evaluation. The tiny expert is z = 1 (no
# step beat the base model), so its shuffled and random controls are the same expert as ordered: their 4
# evaluations are the ordered one's (Cached), and the twin has 5 distinct evaluation runs.
N_TRANSFER_STEPS, N_TRANSFER_SHARED, N_TRANSFER_EVALS = 1 + 3 + 4 + 4 + 2, 4, 5
# ablations (Table 4) on ARC-Easy cloze: SVDs of the MLP and attention matrices, 5 variants, base + 5 variants on
# ARC-Easy cloze and ARC-Challenge cloze. Already made by then (Cached): the MLP SVD, SVF-PG mlp (the profile's
# expert), base on both slices and that expert on ARC-Easy cloze; 9 evaluation runs are new.
N_ABLATION_STEPS, N_ABLATION_CACHED, N_ABLATION_EVALS = 2 + 5 + 2 * 6, 5, 9


# The catalog of a completed in-process full-paper tiny run, one thread per stage, once the resume test below has
# made it: tests/test_scaleout.py compares its Dask run with it instead of running the flow once more.
LOCAL_RUN: list = []


@pytest.fixture
def prefect_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return tmp_path / "prefect"


@pytest.mark.slow  # minutes on 2 cores: .ci/run runs it after the default suite
def test_full_paper_resumes_after_crash(t2_home, prefect_env, data_dir, monkeypatch):
    monkeypatch.setenv("T2_THREADS", "1")  # as each of two Dask workers on two cores has (test_scaleout.py)
    crashed = t2_cli("run", "full-paper", "--profile", "tiny", env={"T2_FAULT_AFTER": "eval:2"})
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind='eval' AND status='completed'") == [(2,)]
    done_before = catalog_rows(t2_home, "SELECT run_id, finished_at FROM runs WHERE kind='eval' ORDER BY run_id")

    rerun = t2_cli("run", "full-paper", "--profile", "tiny")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    out = " ".join(rerun.stdout.split())
    # svd, experts, the two finished evaluations, and the transfer evaluations shared between controls
    assert out.count("Cached") == 1 + N_TRAIN + 2 + N_ABLATION_CACHED + N_TRANSFER_SHARED, rerun.stdout
    assert out.count("Completed") == (N_EVALS - 2 + N_ADAPT_STEPS + N_ABLATION_STEPS - N_ABLATION_CACHED
                                      + N_TRANSFER_STEPS - N_TRANSFER_SHARED), rerun.stdout
    # nothing duplicated, and the finished runs were not redone
    n_evals = N_EVALS + N_ADAPT_EVALS + N_ABLATION_EVALS + N_TRANSFER_EVALS
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind='eval' AND status='completed'") == [(n_evals,)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind='adapt' AND status='completed'") == [(5,)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind='transfer' AND status='completed'") == [(3,)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind='svd'") == [(3,)]  # mlp, attn, the twin's
    assert catalog_rows(t2_home, "SELECT count(*), count(DISTINCT (run_id, idx)) FROM samples") == [(3 * n_evals, 3 * n_evals)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM decompositions") == [(3,)]
    after = dict(catalog_rows(t2_home, "SELECT run_id, finished_at FROM runs WHERE kind='eval'"))
    assert all(after[r] == t for r, t in done_before)

    # a deleted output invalidates its cached task: delete one run's rows, rerun recomputes just that one
    victim = done_before[0][0]
    con = duckdb.connect(str(t2_home / "catalog.duckdb"))
    con.execute("DELETE FROM runs WHERE run_id = ?", [victim])
    con.close()
    third = t2_cli("run", "full-paper", "--profile", "tiny")
    assert third.returncode == 0, third.stderr[-2000:]
    assert " ".join(third.stdout.split()).count("Completed") == 1
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind='eval' AND status='completed'") == [(n_evals,)]
    # Table 2 renders its five rows from what the flow recorded
    t2 = t2_inproc("report", "--table", "2", "--format", "csv", "--model", "tiny-random", "--profile", "tiny")
    assert t2.returncode == 0, t2.stderr
    assert [line.split(",")[1] for line in t2.stdout.splitlines()[1:]] == [
        "base", "lora (best on test)", "lora (same category)", "lora (few-shot pick)", "prompt", "cls-expert",
        "few-shot"]
    picks = catalog_rows(t2_home, "SELECT task, variant FROM runs WHERE kind = 'select' AND status = 'completed'")
    assert sorted(t for t, _ in picks) == ["arc_challenge_cloze", "math"]  # one per searched task
    assert all(v.split(":")[0] in ("lora", "lora-pg") for _, v in picks)
    t8 = t2_inproc("report", "--table", "8", "--format", "csv")  # the flow's few-shot runs, by number of shots
    assert t8.returncode == 0 and sorted(tuple(line.split(",")[1:3]) for line in t8.stdout.splitlines()[1:]) == [
        ("arc_challenge_cloze", "2"), ("arc_challenge_cloze", "3"), ("math", "2"), ("math", "3")], t8.stdout + t8.stderr
    t10 = t2_inproc("report", "--table", "10", "--format", "csv", "--profile", "tiny")  # full (3 shots), light (2)
    assert t10.returncode == 0, t10.stderr
    t10_rows = list(csv.DictReader(io.StringIO(t10.stdout)))
    assert [(r["row"], r["shots"]) for r in t10_rows if r["task"] == "arc_challenge_cloze"] == [
        ("base", ""), ("full", "3"), ("light", "2")], t10.stdout
    # Table 2's few-shot row is the full search's evaluation, whichever finished last
    full_acc = next(float(r["accuracy"]) for r in t10_rows if (r["task"], r["row"]) == ("arc_challenge_cloze", "full"))
    few_row = next(r for r in csv.DictReader(io.StringIO(t2.stdout)) if r["method"] == "few-shot")
    assert few_row["arc_challenge_cloze acc (n, p vs base)"].startswith(f"{full_acc:.3f} (n=3"), (few_row, full_acc)
    assert t2_inproc("report", "--table", "3").returncode == 0
    t4 = list(csv.DictReader(io.StringIO(t2_inproc("report", "--table", "4", "--format", "csv").stdout)))
    assert [r["variant"] for r in t4 if r["trained on"] == "arc_easy_cloze"] == [
        "base", "LoRA-NTP attn", "LoRA-PG attn", "SVF-NTP mlp", "SVF-PG attn", "SVF-PG mlp"]
    # Tables 9 and 5: the twin's base, the moved expert with each control, and cross-model few-shot
    t9 = list(csv.DictReader(io.StringIO(t2_inproc("report", "--table", "9", "--format", "csv").stdout)))
    assert [r["row"] for r in t9] == ["base", "tiny-random ordered", "tiny-random shuffled", "tiny-random random"]
    assert all(r["model"] == "tiny-random-twin" and "(n=3" in r["arc_easy_cloze acc (n, p vs base)"] for r in t9)
    t5 = list(csv.DictReader(io.StringIO(t2_inproc("report", "--table", "5", "--format", "csv").stdout)))
    assert [r["row"] for r in t5] == ["base", "tiny-random ordered", "tiny-random shuffled", "tiny-random random",
                                      "cross-model few-shot"], t5
    for fig in ("6", "7"):
        made = t2_inproc("report", "--figure", fig, "--out", str(t2_home / f"fig{fig}.png"))
        assert made.returncode == 0 and (t2_home / f"fig{fig}.png").stat().st_size > 1000, made.stderr

    # one path from a request to a recorded result: the CLI's eval of the flow's request is the same run
    # (tiny profile, ARC-Easy slice: batch 4, fp32, max_new_tokens min(8, task default), seed 0, first 3)
    flow_rows = catalog_rows(t2_home, "SELECT r.run_id, r.config_hash, s.idx, s.output, s.correct FROM runs r JOIN "
                                      "samples s USING (run_id) WHERE r.task = 'arc_easy' AND r.method = 'base' "
                                      "ORDER BY s.idx")
    args = ("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "3", "--batch-size", "4",
            "--max-new-tokens", "8", "--dtype", "float32")  # the tiny profile's fp32 (the CLI's default is auto)
    cli = t2_inproc(*args)
    assert cli.returncode == 0 and f"run {flow_rows[0][0]} is already in the catalog" in cli.stdout, cli.stdout
    forced = t2_inproc(*args, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert catalog_rows(t2_home, "SELECT r.run_id, r.config_hash, s.idx, s.output, s.correct FROM runs r JOIN "
                                 "samples s USING (run_id) WHERE r.task = 'arc_easy' AND r.method = 'base' "
                                 "ORDER BY s.idx") == flow_rows
    LOCAL_RUN.append(t2_home)  # resumed and completed: the rows an uninterrupted run has


def test_a_done_stage_is_read_back_without_the_model(tiny, t2_home, data_dir, monkeypatch):
    """The flow plans every stage from the model's identity and reads a completed one back from the catalog:
    neither loads the model (only a stage that runs does, where it runs)."""
    import flows.stages as stages
    from catalog import Catalog
    from catalog.execute import execute
    from t2core.profiles import get_profile
    from t2ops import evaluation, svd
    from t2ops.model import ident_of

    prof = get_profile("tiny")
    ereq = evaluation.EvalRequest(prof.eval_config(prof.evals[0]), data_dir=str(data_dir))
    execute(svd.OP, svd.SvdRequest("mlp"), tiny, Catalog())
    first = execute(evaluation.OP, ereq, tiny, Catalog())
    monkeypatch.setattr(stages, "get_model", lambda *a, **k: pytest.fail("a done stage loaded the model"))
    S = stages.Stages()
    ident = ident_of(tiny)
    again = S.outcome(S.submit("eval", evaluation.OP, ident, ereq))
    assert again.run_id == first.run_id and again.reused and again.accuracy == first.accuracy
    S.submit("eval, asked again", evaluation.OP, ident, ereq)
    S.outcome(S.submit("svd", svd.OP, ident, svd.SvdRequest("mlp")))
    rows = [stages.summary(label, st, first) for label, st, first in S.listed]
    assert [(r["step"], r["state"]) for r in rows] == [("eval", "Cached"), ("eval, asked again", "Cached"),
                                                       ("svd", "Cached")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@pytest.mark.slow  # a Prefect server, t2 serve and a whole tiny full-paper run: minutes; run by .ci/run
def test_served_deployment_runs_against_local_server(t2_home, prefect_env, data_dir):
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(prefect_env), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    prefect = [sys.executable, "-m", "prefect"]
    os.makedirs(prefect_env, exist_ok=True)
    logs = prefect_env.parent
    server = subprocess.Popen([*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT, cwd=REPO)
    served = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/health", 90)
        # served from an unrelated working directory: the deployment uses module entrypoints
        served = subprocess.Popen([sys.executable, "-m", "flows.serve", "--profile", "tiny"], env=env, cwd=logs,
                                  stdout=open(logs / "serve.log", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:  # wait until the deployment is registered
            ls = subprocess.run([*prefect, "deployment", "inspect", "full-paper/full-paper"], env=env,
                                capture_output=True, text=True)
            if ls.returncode == 0:
                break
            assert time.monotonic() < deadline, (logs / "serve.log").read_text()[-3000:]
            time.sleep(1)
        run = subprocess.run([*prefect, "deployment", "run", "full-paper/full-paper", "--watch",
                              "--watch-timeout", "300"], env=env, capture_output=True, text=True, timeout=360)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:] + (logs / "serve.log").read_text()[-3000:]
        assert "Completed" in run.stdout
    finally:
        for p in (served, server):
            if p is not None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    n_evals = N_EVALS + N_ADAPT_EVALS + N_ABLATION_EVALS + N_TRANSFER_EVALS
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind='eval' AND status='completed'") == [(n_evals,)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM samples") == [(3 * n_evals,)]
    assert catalog_rows(t2_home, "SELECT DISTINCT model FROM runs ORDER BY model") == [("tiny-random",),
                                                                                        ("tiny-random-twin",)]
    # N_TRAIN + the cls-expert; one few-shot mixture per searched task (on tiny the full and the light search
    # end at the same α: one expert); the 4 new ablation products; the twin's cross-model mixture; the one
    # transferred expert (its three controls coincide: z = 1)
    assert catalog_rows(t2_home, "SELECT count(*) FROM experts") == [(N_TRAIN + 1 + 2 + 4 + 1 + 1,)]
    evals = catalog_rows(t2_home, "SELECT split_part(variant, ':', 1) AS m, count(*) FROM runs WHERE kind='eval' "
                                  "GROUP BY m ORDER BY m")
    # adapt: the 10 two-pass runs + the twin's cross-model few-shot; base 7 + the unseen ARC-Challenge cloze
    # slice + the twin's 2; LoRA and LoRA-PG: each on its task and 3 unseen, the ablation's on its 2 slices; svf:
    # 4 experts on their tasks, the ablation's SVF variants (2 new on ARC-Easy cloze, 3 on ARC-Challenge cloze),
    # the moved expert on the twin's 2 slices
    assert evals == [("adapt", 11), ("base", 10), ("lora", 6), ("lora-pg", 6), ("svf", 11)]


@pytest.mark.slow  # minutes on 2 cores: .ci/run runs it after the default suite
def test_ablations_flow_renders_table_4_and_figure_9(t2_home, prefect_env, data_dir):
    first = t2_cli("run", "ablations", "--profile", "tiny")
    assert first.returncode == 0, first.stderr[-2000:]
    t4 = t2_inproc("report", "--table", "4", "--format", "csv")
    assert t4.returncode == 0, t4.stderr
    rows = [r for r in csv.DictReader(io.StringIO(t4.stdout)) if r["trained on"] == "arc_easy_cloze"]
    assert [r["variant"] for r in rows] == ["base", "LoRA-NTP attn", "LoRA-PG attn", "SVF-NTP mlp", "SVF-PG attn",
                                            "SVF-PG mlp"], t4.stdout
    params = {r["variant"]: int(r["#params"]) for r in rows[1:]}
    # tiny-random: SVF has one number per singular value (64 per matrix: 3 MLP or 4 attention matrices
    # per block, 2 blocks); LoRA r16 on q and v: 16 * (64 + 64) + 16 * (64 + 32) per block
    assert params == {"SVF-PG mlp": 384, "SVF-NTP mlp": 384, "SVF-PG attn": 2 * (64 + 32 + 32 + 64),
                      "LoRA-PG attn": 7168, "LoRA-NTP attn": 7168}
    assert all(r["steps"] == "2" and "(n=3" in r["arc_challenge_cloze acc (n, p vs base)"] for r in rows[1:])
    fig = t2_inproc("report", "--figure", "9", "--out", str(t2_home / "fig9.png"))
    assert fig.returncode == 0 and (t2_home / "fig9.png").stat().st_size > 1000, fig.stderr
    again = t2_cli("run", "ablations", "--profile", "tiny")  # everything cached: nothing retrained or re-evaluated
    assert again.returncode == 0 and " ".join(again.stdout.split()).count("Completed") == 0, again.stdout
