"""Table 1 and Figure 4 from a catalog with hand-made runs (expected values computed by hand)."""

import pytest

from catalog import Catalog
from catalog.records import write_records
from catalog.reports.figure4 import figure4
from catalog.reports.table1 import table1
from t2core.errors import T2Error
from t2core.evaluate import EvalResult, SampleResult
from t2core.variants import VariantRef
from t2ops.records import EvalRecord


def _eval(cat, run_id, task, variant, n, correct, model="m"):
    samples = [SampleResult(i, f"s{i}", "p", "o", "x", "x", i < correct) for i in range(n)]
    write_records(cat, [EvalRecord(EvalResult(run_id=run_id, kind="eval", ref=VariantRef.parse(variant), model=model,
                                              weights_hash="h", task=task, task_version="1", split="test", config={},
                                              data_files={}, samples=samples, seconds=1.0, seed=0))])


def test_table1_normalised_scores(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    _eval(cat, "b1", "arc_easy", "base", 50, 10)  # 0.2
    _eval(cat, "s1", "arc_easy", "svf:abc", 50, 15)  # 0.3 -> norm 1.5
    _eval(cat, "b2", "gsm8k", "base", 10, 0)  # base 0: norm undefined
    _eval(cat, "s2", "gsm8k", "svf:def", 10, 1)
    _eval(cat, "x", "math", "base", 10, 5)  # not a training task: not in Table 1
    _eval(cat, "l1", "arc_easy", "lora-pg:a1", 50, 5)  # 0.1 -> norm 0.5
    _eval(cat, "l2", "arc_easy", "lora:a2", 50, 20)  # 0.4 -> norm 2.0
    t = table1(cat)
    rows = {r[1]: r for r in t.rows}
    assert [r[1] for r in t.rows] == ["base", "lora", "lora-pg", "svf"]  # paper order: base, baselines, SVF
    c = t.columns
    assert rows["svf"][c.index("arc_easy acc")] == pytest.approx(0.3)
    assert rows["svf"][c.index("arc_easy norm")] == pytest.approx(1.5)
    assert rows["base"][c.index("arc_easy norm")] == pytest.approx(1.0)
    assert rows["lora"][c.index("arc_easy norm")] == pytest.approx(2.0)
    assert rows["lora-pg"][c.index("arc_easy norm")] == pytest.approx(0.5)
    assert rows["svf"][c.index("gsm8k norm")] is None and rows["svf"][c.index("mbpp acc")] is None
    md = t.to_markdown()
    assert "| m | svf | 0.100 | – | 0.300 | – | – | 1.500 | 10/–/50 |" in md
    assert t.to_csv().splitlines()[0].startswith("model,method,gsm8k acc")
    assert not any("cloze" in col for col in c)  # a protocol variant gets a column only once it has runs
    _eval(cat, "b3", "arc_easy_cloze", "base", 20, 10)  # 0.5
    _eval(cat, "s3", "arc_easy_cloze", "svf:ghi", 20, 12)  # 0.6 -> norm 1.2
    t = table1(cat)
    c, rows = t.columns, {r[1]: r for r in t.rows}
    assert c[2:6] == ["gsm8k acc", "mbpp acc", "arc_easy acc", "arc_easy_cloze acc"]
    assert rows["svf"][c.index("arc_easy_cloze norm")] == pytest.approx(1.2)
    assert rows["svf"][-1] == "10/–/50/20" and rows["lora"][c.index("arc_easy_cloze acc")] is None


def test_figure4_png(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    with pytest.raises(T2Error, match="no learning curves"):
        figure4(cat, tmp_path / "f.png")
    cat.write(lambda con: con.execute(
        "INSERT INTO runs (run_id, kind, model, task, status) VALUES ('t1', 'train', 'm', 'arc_easy', 'completed')"))
    cat.write(lambda con: con.executemany("INSERT INTO curves VALUES (?, ?, ?, 0, 0, 0, 0, ?, 1, 10)",
                                          [["t1", i, -1 + i / 5, (0.2 + i / 50) if i % 5 == 0 else None]
                                           for i in range(1, 11)]))
    out = figure4(cat, tmp_path / "f.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_a_report_is_one_function_and_one_register_call(t2_home):
    """A report added from outside the package (here, this file) is found by `t2 report` by its number."""
    from catalog.reports import register_report
    from catalog.reports.common import Table
    from tests.conftest import t2_inproc

    def runs_by_kind(cat, model=None):
        _, rows = cat.query("SELECT kind, count(*) FROM runs GROUP BY kind ORDER BY kind")
        return Table("Table 99: runs by kind", ["kind", "runs"], [list(r) for r in rows])  # one naming column

    register_report("table", 99, runs_by_kind)
    _eval(Catalog(), "b1", "arc_easy", "base", 4, 1)
    out = t2_inproc("report", "--table", "99", "--format", "md")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "**Table 99: runs by kind**\n\n| kind | runs |\n|---|---|\n| eval | 1 |\n"
    missing = t2_inproc("report", "--table", "98")
    listed = missing.stderr.split("--table ")[-1].split(", --figure")[0].split(", ")
    assert missing.returncode == 2 and {"1", "2", "10", "99"} <= set(listed)  # (other tests may add theirs)


def test_a_report_is_found_by_its_name_and_listed_in_the_help(t2_home, monkeypatch):
    """Issue 40: a user's own report is `t2 report --table NAME`, not only a number; the help lists the
    registered reports when it is shown (a report registered after the CLI loaded too)."""
    from catalog.reports import register_report
    from catalog.reports.common import Table
    from t2core.errors import ConfigError
    from tests.conftest import t2_inproc

    register_report("table", "runs-by-status", lambda cat, model=None: Table(
        "runs by status", ["status", "runs"], [list(r) for r in cat.query(
            "SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")[1]]))
    _eval(Catalog(), "c1", "arc_easy", "base", 4, 1)
    out = t2_inproc("report", "--table", "runs-by-status", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["status,runs", "completed,1"]
    assert t2_inproc("report", "--table", "2").returncode == 2  # the numbers still work (no runs: one line)
    monkeypatch.setenv("COLUMNS", "250")  # the help on one line per option
    shown = t2_inproc("report", "--help").stdout
    assert "1, 2, 3, 4, 5, 8, 9, 10" in shown and "runs-by-status" in shown
    with pytest.raises(ConfigError, match="must be a number or a name"):
        register_report("table", "runs by status", lambda cat, model=None: None)


def test_compare_pairs_two_runs_item_by_item(t2_home):
    from tests.conftest import t2_inproc

    cat = Catalog()
    _eval(cat, "aaaa01", "mbpp", "svf:abc", 20, 12)  # items 0-11 right
    _eval(cat, "bbbb01", "mbpp", "base", 20, 8)  # items 0-7 right: A alone 4, B alone 0, p = 2 * 0.5^4
    _eval(cat, "aaaa02", "gsm8k", "base", 5, 1)
    r = t2_inproc("compare", "aaaa01", "bbbb")
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "A aaaa01 (mbpp svf:abc): 0.600 B bbbb01 (mbpp base): 0.400 on 20 shared items" in out
    assert "only A right 4, only B right 0; exact McNemar p = 0.125" in out
    assert "note:" not in out  # the same slice of the same model: nothing to say
    r = t2_inproc("compare", "aaaa", "bbbb01")
    assert r.returncode == 2 and "run 'aaaa': 2 completed evaluations have an id that starts so" in r.stderr
    _eval(cat, "cccc01", "arc_easy", "base", 20, 5)
    _eval(cat, "dddd01", "arc_easy_cloze", "base", 20, 9)  # the same questions in the other formulation
    r = t2_inproc("compare", "cccc01", "dddd01")
    out = " ".join(r.stdout.split())
    assert r.returncode == 0 and "of different slices (arc_easy/test and arc_easy_cloze/test)" in out, out


def test_a_table_on_screen_leaves_out_rows_and_columns_with_no_result():
    """Issue 36: a model with no runs (the twin in Table 2) is not six empty rows; a norm column no row has is
    not shown; the legend travels with the table."""
    from catalog.reports.common import Table

    t = Table("T", ["model", "method", "a acc", "a norm", "n"],
              [["m", "base", 0.5, None, "3"], ["m", "lora", None, None, "–"], ["twin", "base", None, None, None]],
              notes=["n: items"], keys=2)
    shown = t.trimmed()
    assert shown.columns == ["model", "method", "a acc", "n"] and shown.rows == [["m", "base", 0.5, "3"]]
    assert shown.notes == ["n: items"] and "_n: items_" in shown.to_markdown()
    assert t.to_csv().count("\n") == 4  # csv keeps every row, for programs
