"""Operations return their records and write nothing; one executor writes them, a run in one transaction
(issue 21, item 3). The method registry and the id encoding every operation shares (items 2 and 4)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest

from catalog import Catalog
from catalog.execute import execute, is_done
from catalog.records import write_records
from t2core.errors import ConfigError
from t2core.evaluate import EvalConfig
from t2core.sampling import GenerationConfig
from t2ops import evaluation
from t2ops.model import ident_of
from t2ops.operation import Hooks, OperationBase, Produced
from t2ops.records import ModelRecord, RunRow, TrainingRecord


def _eval_req(data_dir):
    ev = EvalConfig("arc_easy_cloze", limit=2, generation=GenerationConfig(max_new_tokens=2, batch_size=2))
    return evaluation.EvalRequest(ev, None, "hf", str(data_dir))


def test_run_returns_picklable_records_and_never_touches_the_catalog(tiny, data_dir, tmp_path, monkeypatch):
    path = tmp_path / "untouched.duckdb"
    monkeypatch.setenv("T2_CATALOG", str(path))
    plan = evaluation.OP.plan(_eval_req(data_dir), ident_of(tiny))
    out = evaluation.OP.run(plan, tiny, {}, Hooks())
    assert not path.exists()  # computed with no catalog at all: a worker elsewhere can do this
    records = pickle.loads(pickle.dumps(out.records))  # and send them back to the one writer
    cat = Catalog(path)
    assert not is_done(cat, plan)
    write_records(cat, records)
    assert is_done(cat, plan)
    _, rows = cat.query("SELECT status, variant FROM runs WHERE run_id = ?", [plan.run_id])
    assert rows == [("completed", "base")]
    assert cat.query("SELECT count(*) FROM samples WHERE run_id = ?", [plan.run_id])[1] == [(2,)]


def test_the_records_of_a_run_are_written_all_or_nothing(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    good = ModelRecord("h", "m", "src", 1)
    broken = TrainingRecord(RunRow("r1", "train", "m", "h"), "svf:x", "/p", "mlp", "svf-pg", {"a": "not a number"})
    with pytest.raises(ValueError):
        write_records(cat, [good, broken])
    assert cat.query("SELECT count(*) FROM models")[1] == [(0,)]  # the model row went with the failed run's
    with pytest.raises(TypeError, match="no catalog writer for str"):
        write_records(cat, ["a row"])


@dataclass(frozen=True)
class _Plan:
    run_id: str
    row: RunRow
    outputs: tuple = ()


@dataclass
class _Toy(OperationBase):
    """An operation defined here: the executor needs nothing else to run, record, reuse and fail it."""

    fail: bool = False
    runs: list = field(default_factory=list)
    name = "toy"

    def plan(self, req, ident):
        return _Plan(f"toy-{req}", RunRow(f"toy-{req}", "eval", ident.alias, ident.weights_hash))

    def done(self, plan, recorded):
        return ("reused", recorded.metrics)

    def run(self, plan, loaded, deps, hooks):
        self.runs.append(plan.run_id)
        if self.fail:
            raise RuntimeError("boom")
        return Produced(("ran", plan.run_id), (_Completed(plan.row),))


@dataclass(frozen=True)
class _Completed:
    row: RunRow


def test_one_executor_marks_runs_records_them_and_reuses_them(tiny, tmp_path, monkeypatch):
    from catalog import records as writers
    from catalog.runs import upsert_run

    monkeypatch.setitem(writers._WRITERS, _Completed, lambda con, r: (upsert_run(con, r.row, "completed"),
                                                                      con.execute("INSERT OR REPLACE INTO metrics VALUES (?, 'k', 1)",
                                                                                  [r.row.run_id])))
    cat = Catalog(tmp_path / "c.duckdb")
    op = _Toy()
    assert execute(op, "a", tiny, cat) == ("ran", "toy-a")
    how, metrics = execute(op, "a", tiny, cat)
    assert how == "reused" and op.runs == ["toy-a"]
    assert metrics.pop("peak_host_mb", 0) > 0 and metrics.pop("peak_floor_host_mb", 0) > 0  # how it ran: its peak, floor
    assert metrics == {"k": 1.0}  # and its records
    assert execute(op, "a", tiny, cat, force=True) == ("ran", "toy-a") and len(op.runs) == 2
    bad = _Toy(fail=True)
    with pytest.raises(RuntimeError, match="boom"):
        execute(bad, "b", tiny, cat)
    _, rows = cat.query("SELECT run_id, status, error FROM runs ORDER BY run_id")
    assert rows == [("toy-a", "completed", None), ("toy-b", "failed", "RuntimeError: boom")]


def test_every_method_says_how_it_trains_where_it_is_stored_and_what_applies_it():
    from t2core.methods import adapter_products, get_method, method_names, method_of, sampler_for

    assert {"dora", "ia3", "lora-ntp", "lora-pg", "svf-ntp", "svf-pg"} <= set(method_names())  # the built-ins
    assert {"dora", "ia3", "lora", "lora-pg"} <= set(adapter_products()) and "svf" not in adapter_products()
    assert method_of("pg", "svf").name == "svf-pg" and method_of("ntp", "svf").name == "svf-ntp"
    assert method_of("pg", "lora").product == "lora-pg" and method_of("ntp", "lora").product == "lora"
    assert [get_method(n).store for n in ("svf-pg", "svf-ntp", "lora-pg", "ia3")] == [
        "experts", "experts", "adapters", "adapters"]
    assert (sampler_for("base", "vllm"), sampler_for("svf", "vllm"), sampler_for("lora-pg", "vllm"),
            sampler_for("ia3", "proc")) == ("vllm", "vllm", "hf", "hf")
    with pytest.raises(ConfigError, match="method='dora' is not one trained by PG; use one of ") as e:
        method_of("pg", "dora")
    assert {"lora", "svf"} <= set(str(e.value).split("use one of ")[1].rstrip(".").split(", "))


def test_ids_come_from_one_encoding_of_the_identity_fields():
    import hashlib
    import json

    from t2core.adapt.fewshot import FewShotConfig
    from t2core.ids import content_id, identity_fields
    from t2core.training.config import RLConfig

    payload = ["kind", {"b": 1, "a": (2, 3)}]
    by_hand = hashlib.sha256(json.dumps(["kind", {"a": [2, 3], "b": 1}], separators=(",", ":")).encode()).hexdigest()
    assert content_id(payload) == by_hand[:24] and content_id(payload, 32) == by_hand[:32]
    rl = identity_fields(RLConfig(task="gsm8k", micro_batch_size=4))
    assert "micro_batch_size" not in rl and rl["svf"]["targets"] == "mlp"  # nested configs are encoded too
    few = identity_fields(FewShotConfig(task="math"))
    assert "batched" not in few and "batch_size" not in few and "cem" in few
    assert identity_fields(RLConfig(task="gsm8k", micro_batch_size=4)) == identity_fields(RLConfig(task="gsm8k"))
