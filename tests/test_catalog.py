"""Catalog: concurrent writers lose nothing, transactions are atomic, reruns do not duplicate."""

import multiprocessing as mp

import duckdb
import pytest

from catalog import Catalog
from catalog import records as rec
from t2core.evaluate import EvalResult, SampleResult


def _writer(path: str, worker: int, n: int) -> None:
    cat = Catalog(path, timeout_s=120)
    for i in range(n):
        cat.write(lambda con, i=i: con.execute("INSERT INTO metrics VALUES (?, ?, ?)", [f"w{worker}", f"m{i}", float(i)]))


def test_four_concurrent_writer_processes_lose_no_row(tmp_path):
    path = str(tmp_path / "cat.duckdb")
    Catalog(path).read(lambda con: None)  # create the schema
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(4)]
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
    return EvalResult(run_id=run_id, kind="eval", variant="base", model="m", weights_hash="h", task="arc_easy", task_version="1",
                      split="test", config={}, config_hash="c", data_files={"f": "x" * 64}, samples=samples,
                      seconds=1.0, seed=0)


def test_record_eval_twice_does_not_duplicate(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    rec.start_run(cat, run_id="r1", kind="eval", model="m", weights_hash="h")
    rec.record_eval(cat, _result("r1", 5, 3))
    rec.record_eval(cat, _result("r1", 5, 3))
    assert cat.query("SELECT count(*) FROM runs")[1] == [(1,)]
    assert cat.query("SELECT count(*) FROM samples")[1] == [(5,)]
    assert cat.query("SELECT value FROM metrics WHERE name='accuracy'")[1] == [(pytest.approx(0.6),)]
    assert cat.query("SELECT status, git_sha IS NOT NULL FROM runs")[1] == [("completed", True)]
    assert rec.is_completed(cat, "r1") and not rec.is_completed(cat, "r2")


def test_failed_run_is_marked(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    rec.start_run(cat, run_id="r1", kind="eval", model="m", weights_hash="h")
    rec.fail_run(cat, "r1", "ValueError: boom")
    assert cat.query("SELECT status, error FROM runs")[1] == [("failed", "ValueError: boom")]


def test_non_lock_errors_are_not_retried(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb", timeout_s=30)
    with pytest.raises(duckdb.CatalogException):
        cat.query("SELECT * FROM no_such_table")
