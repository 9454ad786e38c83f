"""An SVF expert with z = 1 everywhere (the initial point, which a run keeps when no RL step beats the
base on validation: smol's GSM8K and MBPP experts) has the base weights, so its evaluation is recorded
from the base run's rows instead of being run again (issue 19: work that buys nothing)."""

from __future__ import annotations

import torch

from catalog import Catalog
from catalog.execute import execute
from t2core.evaluate import EvalConfig
from t2core.sampling import GenerationConfig
from t2core.svd import ensure_svd, load_svd
from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy, ranks_of, save_expert
from t2ops import evaluation
from t2ops.model import ident_of


def _expert(tiny, tmp_path, name: str, scale: float = 1.0):
    pol = SVFPolicy(ranks_of(load_svd(ensure_svd(tiny, "mlp"))), SVFConfig(targets="mlp"))
    with torch.no_grad():
        for p in pol.params.values():
            p.mul_(scale)
    header = ExpertHeader(base_weights_hash=tiny.weights_hash, model=tiny.alias, task="arc_easy_cloze",
                          svf={"targets": "mlp", "param": "direct", "mode": "factored"},
                          ranks={n: int(pol.z(n).shape[0]) for n in pol.names})
    return str(save_expert(tmp_path / name / "expert.safetensors", pol, header))


def _rows(cat: Catalog, sql: str) -> list[tuple]:
    return cat.query(sql)[1]


def test_an_expert_with_z_one_records_the_base_runs_rows(t2_home, tiny, data_dir, tmp_path):
    ev = EvalConfig(task="arc_easy_cloze", limit=3, generation=GenerationConfig(batch_size=4, dtype="float32"))
    cat = Catalog()
    base_id = evaluation.OP.plan(evaluation.EvalRequest(ev, None, "hf", str(data_dir)), ident_of(tiny)).run_id
    out = execute(evaluation.OP, evaluation.EvalRequest(ev, _expert(tiny, tmp_path, "one"), "hf", str(data_dir)), tiny, cat)
    assert out.same_as == base_id and out.run_id != base_id and not out.reused
    runs = dict(_rows(cat, "SELECT run_id, status FROM runs WHERE kind = 'eval'"))
    assert runs == {base_id: "completed", out.run_id: "completed"}
    (cfg,), = _rows(cat, f"SELECT config_json FROM runs WHERE run_id = '{out.run_id}'")
    assert f'"same_as": "{base_id}"' in cfg
    q = "SELECT idx, output, parsed, correct FROM samples WHERE run_id = '{}' ORDER BY idx"
    assert _rows(cat, q.format(out.run_id)) == _rows(cat, q.format(base_id))
    assert len(_rows(cat, q.format(base_id))) == 3
    # the results' metrics are the base run's; how each run ran (its peak memory) is its own
    m = "SELECT name, value FROM metrics WHERE run_id = '{}' AND name NOT LIKE 'peak_%' ORDER BY name"
    assert _rows(cat, m.format(out.run_id)) == _rows(cat, m.format(base_id))
    eids = _rows(cat, f"SELECT expert_ids FROM samples WHERE run_id = '{out.run_id}'")
    assert [list(e) for e, in eids] == [[out.variant]] * 3  # the copied samples name the expert that "answered"


def test_a_moved_expert_is_evaluated_itself(t2_home, tiny, data_dir, tmp_path):
    ev = EvalConfig(task="arc_easy_cloze", limit=3, generation=GenerationConfig(batch_size=4, dtype="float32"))
    cat = Catalog()
    out = execute(evaluation.OP, evaluation.EvalRequest(ev, _expert(tiny, tmp_path, "moved", 1.5), "hf", str(data_dir)),
                         tiny, cat)
    assert out.same_as is None and out.result is not None and len(out.result.samples) == 3
    assert [r[0] for r in _rows(cat, "SELECT variant FROM runs WHERE kind = 'eval'")] == [out.variant]
