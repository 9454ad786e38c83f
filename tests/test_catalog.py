"""Catalog: concurrent writers lose nothing, transactions are atomic, reruns do not duplicate."""

import multiprocessing as mp
import time

import duckdb
import pytest

from catalog import Catalog
from catalog import runs as rec
from catalog.records import write_records
from t2core.evaluate import EvalResult, SampleResult
from t2core.variants import BASE_REF
from t2ops.records import EvalRecord, RunRow
from tests import catalog_writer


def test_four_concurrent_writer_processes_lose_no_row(tmp_path):
    path = str(tmp_path / "cat.duckdb")
    Catalog(path).read(lambda con: None)  # create the schema
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=catalog_writer.write_rows, args=(path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    _, rows = Catalog(path).query("SELECT run_id, count(*) FROM metrics GROUP BY run_id ORDER BY run_id")
    assert rows == [(f"w{w}", 25) for w in range(4)]


def test_transaction_is_all_or_nothing(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")

    def tx(con):
        con.execute("INSERT INTO metrics VALUES ('r', 'a', 1)")
        raise RuntimeError("crash mid-transaction")

    with pytest.raises(RuntimeError):
        cat.write(tx)
    assert cat.query("SELECT count(*) FROM metrics")[1] == [(0,)]


def test_lock_held_by_other_process_times_out_clearly(tmp_path):
    import subprocess
    import sys
    import time

    path = tmp_path / "c.duckdb"
    Catalog(path).read(lambda con: None)
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(path)!r}); print('ok', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        from catalog import CatalogBusyError

        t0 = time.monotonic()
        with pytest.raises(CatalogBusyError, match="stayed locked"):
            Catalog(path, timeout_s=1.0).query("SELECT 1")
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()


def _result(run_id: str, n: int, correct: int) -> EvalResult:
    samples = [SampleResult(i, f"s{i}", "p", "o", "A", "A" if i < correct else "B", i < correct) for i in range(n)]
    return EvalResult(run_id=run_id, kind="eval", ref=BASE_REF, model="m", weights_hash="h", task="arc_easy", task_version="1",
                      split="test", config={}, data_files={"f": "x" * 64}, samples=samples,
                      seconds=1.0, seed=0)


def test_record_eval_twice_does_not_duplicate(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    rec.start_run(cat, RunRow("r1", "eval", "m", "h"))
    write_records(cat, [EvalRecord(_result("r1", 5, 3))])
    write_records(cat, [EvalRecord(_result("r1", 5, 3))])
    assert cat.query("SELECT count(*) FROM runs")[1] == [(1,)]
    assert cat.query("SELECT count(*) FROM samples")[1] == [(5,)]
    assert cat.query("SELECT value FROM metrics WHERE name='accuracy'")[1] == [(pytest.approx(0.6),)]
    assert cat.query("SELECT status, git_sha IS NOT NULL FROM runs")[1] == [("completed", True)]
    assert rec.is_completed(cat, "r1") and not rec.is_completed(cat, "r2")


def test_failed_run_is_marked(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    rec.start_run(cat, RunRow("r1", "eval", "m", "h"))
    rec.fail_run(cat, "r1", "ValueError: boom")
    assert cat.query("SELECT status, error FROM runs")[1] == [("failed", "ValueError: boom")]


def test_non_lock_errors_are_not_retried(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb", timeout_s=30)
    with pytest.raises(duckdb.CatalogException):
        cat.query("SELECT * FROM no_such_table")


def test_only_lock_and_transaction_errors_are_retried(tmp_path):
    """By type: a constraint or catalog error whose text mentions a "conflict" is raised at once."""
    from catalog.db import _retryable

    assert _retryable(duckdb.TransactionException("TransactionContext Error: Conflict on tuple deletion"))
    assert _retryable(duckdb.IOException('IO Error: Could not set lock on file "c.duckdb": Conflicting lock is held'))
    assert not _retryable(duckdb.ConstraintException("Constraint Error: duplicate key \"r1\" conflicts"))
    assert not _retryable(duckdb.CatalogException("Catalog Error: Table with name conflict does not exist"))
    assert not _retryable(duckdb.IOException("IO Error: No space left on device"))
    cat = Catalog(tmp_path / "c.duckdb", timeout_s=30)
    cat.write(lambda con: con.execute("CREATE TABLE t (k VARCHAR PRIMARY KEY)"))
    cat.write(lambda con: con.execute("INSERT INTO t VALUES ('conflict')"))
    t0 = time.monotonic()
    with pytest.raises(duckdb.ConstraintException):
        cat.write(lambda con: con.execute("INSERT INTO t VALUES ('conflict')"))
    assert time.monotonic() - t0 < 5  # not retried until the 30 s timeout


def _v2_catalog(path):
    """A catalog file as t2 wrote it before schema v3 (tests/data/catalog_v2.sql: `t2 run full-paper --profile
    tiny` at commit a04b113), with its artifact paths pointing nowhere."""
    from pathlib import Path

    sql = (Path(__file__).parent / "data" / "catalog_v2.sql").read_text().replace("/tmp/oldhome", "/nonexistent")
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()
    return path


def test_a_catalog_written_by_the_previous_schema_opens_migrated(tmp_path):
    from catalog.reports.table1 import table1

    cat = Catalog(_v2_catalog(tmp_path / "old.duckdb"))
    assert cat.query("SELECT max(version) FROM schema_version")[1] == [(4,)]
    methods = cat.query("SELECT kind, method, count(*) FROM runs GROUP BY ALL ORDER BY ALL")[1]
    assert methods == [("eval", "base", 7), ("eval", "lora", 1), ("eval", "lora-pg", 1), ("eval", "svf", 4),
                       ("svd", None, 1), ("train", "lora", 1), ("train", "lora-pg", 1), ("train", "svf", 4)]
    # structured columns filled from the variant strings, for runs and for their samples
    assert cat.query("SELECT count(*) FROM runs WHERE kind = 'eval' AND method = 'svf' AND expert_ids = [variant]"
                     )[1] == [(4,)]
    assert cat.query("SELECT count(*) FROM samples s JOIN runs r USING (run_id) WHERE s.expert_ids <> r.expert_ids "
                     "OR s.expert_ids IS NULL")[1] == [(0,)]
    # adapters are listed under the id `t2 eval --expert` takes
    assert sorted(cat.query("SELECT expert_id FROM experts WHERE method <> 'svf'")[1]) == [
        ("lora-pg:f395fe8420bd5681b184983c",), ("lora:6ff17207718840a649a8d581",)]
    # v4: how each expert was made; SVF experts whose files are gone keep an empty origin (nothing guessed)
    assert sorted(cat.query("SELECT method, origin FROM experts")[1], key=str) == sorted(
        [("lora", "lora-ntp"), ("lora-pg", "lora-pg")] + [("svf", None)] * 4, key=str)
    t = table1(cat)
    rows = {r[1]: r for r in t.rows}
    assert set(rows) == {"base", "svf", "lora", "lora-pg"} and rows["svf"][2] is not None
    Catalog(cat.path).query("SELECT 1")  # a second open finds nothing left to migrate
    assert cat.query("SELECT count(*) FROM schema_version WHERE version IN (3, 4)")[1] == [(2,)]


def test_migration_gives_old_svf_experts_their_content_id(tmp_path, tiny):
    from dataclasses import asdict

    from t2core.experts import ExpertRef
    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import ExpertHeader, SVFPolicy, ranks_of, save_expert

    svd = load_svd(ensure_svd(tiny, "mlp"))
    policy = SVFPolicy(ranks_of(svd))
    header = ExpertHeader(base_weights_hash=tiny.weights_hash, model="tiny-random", task="gsm8k",
                          svf=asdict(policy.cfg), ranks=ranks_of(svd))
    f = save_expert(tmp_path / "e" / "expert.safetensors", policy, header)
    path = _v2_catalog(tmp_path / "old.duckdb")
    con = duckdb.connect(str(path))
    con.execute("UPDATE experts SET path = ? WHERE expert_id = 'gsm8k-6c853c5427635447'", [str(f)])
    con.close()
    cat = Catalog(path)
    new = ExpertRef.resolve(str(f)).id
    assert cat.query("SELECT expert_id FROM experts WHERE path = ?", [str(f)])[1] == [(new,)]
    assert cat.query("SELECT variant, method, expert_ids FROM runs WHERE kind = 'train' AND task = 'gsm8k'")[1] == [
        (new, "svf", [new])]
    # experts whose files are gone keep the id they were listed under
    assert cat.query("SELECT count(*) FROM experts WHERE expert_id = 'mbpp-a87260827d11a34b'")[1] == [(1,)]


def test_a_run_stopped_by_a_signal_says_which_whoever_raised_it():
    """Issue 36: inside a Prefect flow run SIGTERM arrives as Prefect's TerminationSignal, whose text is empty:
    the row named no reason ("TerminationSignal: ")."""
    import signal

    from prefect.exceptions import TerminationSignal

    from catalog.execute import failure_reason
    from t2cli.lifetime import Stopped

    assert failure_reason(TerminationSignal(signal.SIGTERM)) == "TerminationSignal: stopped by SIGTERM"
    assert failure_reason(Stopped(signal.SIGTERM)) == "Stopped: stopped by SIGTERM"
    assert failure_reason(ValueError("bad")) == "ValueError: bad"
