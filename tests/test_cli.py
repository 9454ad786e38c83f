"""The `t2` CLI as a user runs it: output, catalog rows, and one clear line per user error."""


from tests.conftest import catalog_rows, t2_cli, t2_inproc


def test_eval_writes_rows_and_reuses(t2_home, data_dir):
    r = t2_cli("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "5", "--max-new-tokens", "4")
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout
    assert catalog_rows(t2_home, "SELECT count(*) FROM samples") == [(5,)]
    assert catalog_rows(t2_home, "SELECT kind, status, task, split FROM runs") == [("eval", "completed", "arc_easy", "test")]
    r2 = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "5", "--max-new-tokens", "4")
    assert r2.returncode == 0 and "already in the catalog" in r2.stdout
    assert catalog_rows(t2_home, "SELECT count(*) FROM samples") == [(5,)]
    ls = t2_inproc("catalog", "ls")
    assert ls.returncode == 0 and "arc_easy" in ls.stdout
    assert t2_inproc("catalog", "ls", "samples").returncode == 0


def test_svd_twice_records_once(t2_home):
    r1 = t2_cli("svd", "--model", "tiny-random")
    assert r1.returncode == 0, r1.stderr
    assert "computed SVD" in r1.stdout
    r2 = t2_inproc("svd", "--model", "tiny-random")
    assert r2.returncode == 0 and "reused stored decomposition (no SVD computed)" in r2.stdout
    assert catalog_rows(t2_home, "SELECT count(*) FROM decompositions") == [(1,)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM runs WHERE kind = 'svd'") == [(1,)]


def _one_line_error(r, *needles):
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert err.startswith("error:") and "Traceback" not in err
    for n in needles:
        assert n in " ".join(err.split()), err


def test_unknown_model_alias():
    _one_line_error(t2_inproc("svd", "--model", "llama9"), "unknown model alias 'llama9'", "smollm2-135m")


def test_missing_data_dir(tmp_path):
    r = t2_cli("eval", "--model", "tiny-random", "--task", "gsm8k", "--limit", "2",
               env={"T2_DATA_DIR": str(tmp_path / "missing")})
    _one_line_error(r, "missing", "does not exist", "T2_DATA_DIR")


def test_corrupted_svd_file(t2_home):
    assert t2_cli("svd", "--model", "tiny-random").returncode == 0
    f = next((t2_home / "artifacts" / "svd").glob("*/svd.safetensors"))
    f.write_bytes(f.read_bytes()[:-7] + b"garbage")
    _one_line_error(t2_inproc("svd", "--model", "tiny-random"), "corrupted", "rerun")


def test_unknown_task_and_profile():
    _one_line_error(t2_cli("eval", "--model", "tiny-random", "--task", "gsm9k"), "unknown task 'gsm9k'")
    _one_line_error(t2_inproc("run", "full-paper", "--profile", "huge"), "unknown profile 'huge'")


def test_bad_names_are_refused_before_a_model_or_a_flow_starts(monkeypatch):
    """One line naming the known values, exit 2, and nothing loaded or started first."""
    import dataclasses

    import t2cli.common
    from flows.listing import FLOWS

    def must_not_run(*a, **k):
        raise AssertionError("started before the names were checked")

    monkeypatch.setattr(t2cli.common, "load", must_not_run)
    monkeypatch.setitem(FLOWS._items, "full-paper", dataclasses.replace(FLOWS.get("full-paper"), flow=must_not_run))
    _one_line_error(t2_inproc("adapt", "--strategy", "bogus", "--task", "arc_challenge_cloze"),
                    "unknown adaptation strategy 'bogus'; known: ", "cls-expert", "few-shot", "prompt")
    _one_line_error(t2_inproc("adapt", "--strategy", "prompt", "--task", "arc_challenge_cloze", "--sampler", "nope"),
                    "unknown sampler 'nope'")
    _one_line_error(t2_inproc("adapt", "--strategy", "prompt", "--task", "gsm9k"), "unknown task 'gsm9k'")
    _one_line_error(t2_inproc("run", "full-paper", "--profile", "tiny", "--sampler", "nope"),
                    "unknown sampler 'nope'; known:", "hf")
    _one_line_error(t2_inproc("run", "full-papr", "--profile", "tiny"), "unknown flow 'full-papr'")
    _one_line_error(t2_inproc("run", "train-expert", "--task", "gsm9k", "--profile", "tiny"), "unknown task 'gsm9k'")


def test_train_then_eval_expert_then_report(t2_home, data_dir):
    r = t2_cli("train", "--model", "tiny-random", "--task", "arc_easy", "--profile", "tiny")
    assert r.returncode == 0, r.stderr[-2000:]
    expert_id = catalog_rows(t2_home, "SELECT expert_id FROM experts WHERE method = 'svf'")[0][0]
    assert f"expert {expert_id}" in r.stdout and f"--expert {expert_id}" in r.stdout  # the one id users see
    assert catalog_rows(t2_home, "SELECT count(*) FROM curves") == [(2,)]  # tiny profile: 2 steps
    again = t2_inproc("train", "--model", "tiny-random", "--task", "arc_easy", "--profile", "tiny")
    assert again.returncode == 0 and "already trained" in again.stdout
    e = t2_cli("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "3", "--max-new-tokens", "4",
               "--expert", expert_id)
    assert e.returncode == 0, e.stderr[-2000:]
    from t2core.experts import ExpertRef

    path = catalog_rows(t2_home, "SELECT path FROM experts WHERE method = 'svf'")[0][0]
    assert ExpertRef.resolve(path).id == expert_id  # derived from the file's content
    rows = catalog_rows(t2_home, "SELECT run_id, variant, method, expert_ids, config_json FROM runs WHERE kind = 'eval'")
    (run_id, *ref, cfg), = [r for r in rows if r[1] == expert_id]
    assert ref == [expert_id, "svf", [expert_id]]
    # a 2-step tiny expert may keep z = 1 (no step beat base): then its rows are the base run's, recorded once
    assert [r[1] for r in rows if r[0] != run_id] == (["base"] if '"same_as"' in cfg else [])
    assert catalog_rows(t2_home, f"SELECT DISTINCT expert_ids FROM samples WHERE run_id = '{run_id}'") == [([expert_id],)]
    assert catalog_rows(t2_home, "SELECT variant FROM runs WHERE kind = 'train'") == [(expert_id,)]
    rep = t2_inproc("report", "--table", "1", "--format", "csv")
    assert rep.returncode == 0 and "tiny-random,svf," in rep.stdout
    fig = t2_inproc("report", "--figure", "4", "--out", str(t2_home / "fig4.png"))
    assert fig.returncode == 0 and (t2_home / "fig4.png").stat().st_size > 10_000


def test_expert_on_wrong_model_is_a_clear_error(t2_home, data_dir):
    assert t2_cli("train", "--model", "tiny-random", "--task", "arc_easy", "--profile", "tiny").returncode == 0
    expert_id = catalog_rows(t2_home, "SELECT expert_id FROM experts")[0][0]
    r = t2_inproc("eval", "--model", "tiny-random", "--seed", "1", "--task", "arc_easy", "--limit", "2",
                  "--expert", expert_id)
    _one_line_error(r, "was trained on base model 'tiny-random'", "not on this model")


def test_killed_training_resumes_from_its_checkpoint_without_duplicates(t2_home, data_dir):
    """Acceptance: kill training mid-run (kill -9 right after step 3's checkpoint), rerun: it resumes."""
    args = ("train", "--model", "tiny-random", "--task", "arc_easy", "--profile", "tiny", "--steps", "6")
    killed = t2_cli(*args, env={"T2_FAULT_AFTER": "train-step:3"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert "step    3" in killed.stdout and "step    4" not in killed.stdout
    assert catalog_rows(t2_home, "SELECT kind, status FROM runs WHERE kind = 'train'") == [("train", "running")]
    assert catalog_rows(t2_home, "SELECT count(*) FROM experts") == [(0,)]

    resumed = t2_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from the checkpoint of step 3" in resumed.stdout
    assert "step    4" in resumed.stdout and "step    1 " not in resumed.stdout  # steps 1-3 were not redone
    assert catalog_rows(t2_home, "SELECT status, count(*) FROM runs WHERE kind = 'train' GROUP BY status") == [
        ("completed", 1)]
    assert catalog_rows(t2_home, "SELECT count(*), count(DISTINCT step), min(step), max(step) FROM curves") == [
        (6, 6, 1, 6)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM experts") == [(1,)]


def test_a_kill_between_the_stored_expert_and_its_record_is_recorded_by_the_rerun(t2_home, data_dir):
    """kill -9 after the expert is stored and before the catalog has it: the rerun reuses the
    expert and records the run whole (metrics and curve kept with the artifact), no row left running."""
    args = ("train", "--model", "tiny-random", "--task", "arc_easy", "--profile", "tiny", "--steps", "2")
    killed = t2_cli(*args, env={"T2_FAULT_AFTER": "train-stored:1"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert catalog_rows(t2_home, "SELECT status FROM runs WHERE kind = 'train'") == [("running",)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM experts") == [(0,)]

    rerun = t2_cli(*args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert catalog_rows(t2_home, "SELECT status FROM runs WHERE kind = 'train'") == [("completed",)]
    assert catalog_rows(t2_home, "SELECT count(*), min(step), max(step) FROM curves") == [(2, 1, 2)]
    assert catalog_rows(t2_home, "SELECT count(*) FROM experts") == [(1,)]
    names = {n for (n,) in catalog_rows(t2_home, "SELECT name FROM metrics")}
    assert {"base_valid", "best_valid", "best_step", "steps", "n_params"} <= names


def test_a_corrupted_expert_is_refused_where_used_and_shown_where_listed(t2_home, data_dir):
    from pathlib import Path

    assert t2_inproc("train", "--model", "tiny-random", "--task", "arc_easy", "--profile", "tiny",
                     "--steps", "1").returncode == 0
    ((expert_id, path),) = catalog_rows(t2_home, "SELECT expert_id, path FROM experts")
    assert "ok" in t2_inproc("catalog", "ls", "experts").stdout.split()  # the file column
    f = Path(path)
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF  # a vector byte: the header still reads, the file's hash does not match
    f.write_bytes(bytes(data))
    listed = t2_inproc("catalog", "ls", "experts")
    assert listed.returncode == 0 and "corrupted" in listed.stdout
    used = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "2", "--expert", expert_id)
    _one_line_error(used, "is corrupted", "rerun to rebuild it")
    data[10:40] = b"\x00" * 30  # the header itself: the file cannot be read as an expert at all
    f.write_bytes(bytes(data))
    used = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "2", "--expert", expert_id)
    _one_line_error(used, "matches 0 stored experts; 1 stored expert file(s) cannot be read", str(f))


def test_an_experts_origin_is_in_its_header_and_in_the_catalog(t2_home, data_dir):
    """Written by what made it (REINFORCE, next-token prediction, PEFT), never guessed from a config."""
    from t2core.svf import ExpertHeader, expert_origin, read_header

    tiny = ("--model", "tiny-random", "--task", "arc_easy")
    assert t2_inproc("train", *tiny, "--profile", "tiny", "--steps", "1").returncode == 0
    for method in ("svf", "lora"):
        r = t2_inproc("baseline", *tiny, "--method", method, "--steps", "1", "--batch-size", "1")
        assert r.returncode == 0, r.stderr
    rows = catalog_rows(t2_home, "SELECT method, origin, path FROM experts ORDER BY origin")
    assert [(m, o) for m, o, _ in rows] == [("lora", "lora-ntp"), ("svf", "svf-ntp"), ("svf", "svf-pg")]
    assert [read_header(p).origin for m, _, p in rows if m == "svf"] == ["svf-ntp", "svf-pg"]
    # files from before headers kept it: the one config key their writer left
    old = ExpertHeader("h", "m", "gsm8k", {}, {}, config={"transfer": {"source_model": "x"}})
    assert expert_origin(old) == "transfer" and expert_origin(ExpertHeader("h", "m", "gsm8k", {}, {})) == "svf-pg"


def test_eval_through_the_proc_sampler_records_what_hf_gives(t2_home, data_dir, tiny):
    """`t2 eval --sampler proc`: the model in another process; the rows equal an in-process evaluation's."""
    from t2core.evaluate import EvalConfig, evaluate
    from t2core.sampling import GenerationConfig

    res = t2_cli("eval", "--model", "tiny-random", "--task", "gsm8k", "--limit", "3", "--max-new-tokens", "6",
                 "--sampler", "proc")
    assert res.returncode == 0, res.stderr
    rows = catalog_rows(t2_home, "SELECT output FROM samples ORDER BY idx")
    here = evaluate(tiny, EvalConfig("gsm8k", "test", 3, GenerationConfig(max_new_tokens=6, batch_size=16)), data_dir)
    assert [r[0] for r in rows] == [s.output for s in here.samples]


def test_version_and_bad_t2_home(tmp_path):
    from typer.testing import CliRunner

    from t2cli.main import app
    from t2core import __version__

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith(f"t2 {__version__} (git ")
    home = tmp_path / "a-file"
    home.write_text("not a directory")
    res = t2_cli("catalog", "ls", env={"T2_HOME": str(home)})
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "T2_HOME" in lines[0] and str(home) in lines[0]


def test_front_door_refusals_before_any_work(t2_home):
    """Issue 36: each of these is one line and exit 2, before a model loads or a server starts."""
    _one_line_error(t2_inproc("run", "full-paper", "--profile", "tiny", "--stages", ""), "--stages ''", "names no stage")
    _one_line_error(t2_inproc("run", "full-paper", "--profile", "tiny", "--stages", " , "), "names no stage")
    _one_line_error(t2_inproc("catalog", "ls", "runs", "--limit", "-5"), "--limit -5")
    _one_line_error(t2_inproc("report", "--table", "1", "--figure", "4"), "render one at a time")
    _one_line_error(t2_inproc("ask", "  "), "the question is empty")


def test_compare_refuses_a_run_against_itself(t2_home, data_dir):
    r = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "2", "--max-new-tokens", "2")
    assert r.returncode == 0
    (run_id,), = catalog_rows(t2_home, "SELECT run_id FROM runs WHERE kind = 'eval'")
    _one_line_error(t2_inproc("compare", run_id, run_id[:8]), "are the same run")


def test_a_prefect_server_that_does_not_start_is_one_line(monkeypatch):
    from t2cli.common import handle_errors

    @handle_errors
    def boom():
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

    import typer

    try:
        boom()
    except typer.Exit as e:
        assert e.exit_code == 2
    else:
        raise AssertionError("no exit")
