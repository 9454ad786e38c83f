"""`t2 rejudge`: a stored evaluation scored again without generating (issue 42), recorded as a new
run linked to the old one; and `t2 eval --scoring`."""

import duckdb

from tests.conftest import catalog_rows, t2_inproc
from tests.test_cli import _one_line_error


def _stored_gsm8k_run(t2_home) -> tuple[str, str]:
    """A 3-item GSM8K evaluation whose first output is rewritten, as an older scorer saw it: the
    answer '18 - 2 = 16' for its gold, stored as wrong (the first number read)."""
    r = t2_inproc("eval", "--model", "tiny-random", "--task", "gsm8k", "--limit", "3", "--max-new-tokens", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    (run_id,), = catalog_rows(t2_home, "SELECT run_id FROM runs WHERE kind = 'eval'")
    (gold,), = catalog_rows(t2_home, f"SELECT target FROM samples WHERE run_id = '{run_id}' AND idx = 0")
    con = duckdb.connect(str(t2_home / "catalog.duckdb"))
    try:
        con.execute("UPDATE samples SET output = ?, correct = false WHERE run_id = ? AND idx = 0",
                    [f"So {int(gold) + 2} - 2 = {gold}.\nThe answer is: {int(gold) + 2} - 2 = {gold}", run_id])
    finally:
        con.close()
    return run_id, gold


def test_rejudge_records_a_linked_run_and_counts_what_changed(t2_home, data_dir):
    src, gold = _stored_gsm8k_run(t2_home)
    r = t2_inproc("rejudge", src[:10])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0.0000 -> 0.3333" in r.stdout and "1 of 3 verdicts changed" in r.stdout
    (new, cfg, kind), = catalog_rows(t2_home, "SELECT run_id, config_json, kind FROM runs WHERE kind = 'rejudge'")
    assert f'"rejudge_of": "{src}"' in cfg and '"scoring": "t2"' in cfg and kind == "rejudge"
    assert catalog_rows(t2_home, f"SELECT parsed, correct FROM samples WHERE run_id = '{new}' AND idx = 0") == [
        (gold, True)]
    # the stored verdicts stay as they were; nothing was generated (same outputs)
    assert catalog_rows(t2_home, f"SELECT correct FROM samples WHERE run_id = '{src}' AND idx = 0") == [(False,)]
    assert catalog_rows(t2_home, f"SELECT count(*) FROM samples a JOIN samples b USING (idx) WHERE a.run_id = '{src}' "
                                 f"AND b.run_id = '{new}' AND a.output = b.output") == [(3,)]
    again = t2_inproc("rejudge", src)
    assert again.returncode == 0 and "already in the catalog" in again.stdout
    cmp = t2_inproc("compare", new, src)
    assert cmp.returncode == 0 and "only A right 1, only B right 0" in cmp.stdout


def test_rejudge_with_the_released_scorer_is_another_run(t2_home, data_dir):
    src, _ = _stored_gsm8k_run(t2_home)
    assert t2_inproc("rejudge", src).returncode == 0
    r = t2_inproc("rejudge", src, "--scoring", "released")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "judged by released" in r.stdout
    assert len(catalog_rows(t2_home, "SELECT run_id FROM runs WHERE kind = 'rejudge'")) == 2


def test_rejudge_and_eval_refuse_bad_input_in_one_line(t2_home, data_dir):
    _one_line_error(t2_inproc("rejudge", "nope"), "no completed evaluations have an id that starts so")
    src, _ = _stored_gsm8k_run(t2_home)
    _one_line_error(t2_inproc("rejudge", src, "--scoring", "lenient"), "unknown scoring scheme 'lenient'", "released, t2")
    _one_line_error(t2_inproc("eval", "--model", "tiny-random", "--task", "gsm8k", "--limit", "1", "--scoring", "x"),
                    "unknown scoring scheme 'x'")


def test_eval_scoring_is_part_of_the_run_id(t2_home, data_dir):
    args = ("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "2", "--max-new-tokens", "2")
    assert t2_inproc(*args).returncode == 0
    r = t2_inproc(*args, "--scoring", "released")
    assert r.returncode == 0 and "already in the catalog" not in r.stdout, r.stdout + r.stderr
    cfgs = catalog_rows(t2_home, "SELECT config_json FROM runs WHERE kind = 'eval' ORDER BY started_at")
    assert ['"scoring": "t2"' in c for (c,) in cfgs] == [True, False]
