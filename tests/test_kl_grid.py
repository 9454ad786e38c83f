"""λ chosen on validation from a grid (paper A.1; issue 34): validated, part of the id, recorded, resumable."""

import pytest

import tests.synthetic  # noqa: F401 - registers synthetic_ascii
from t2core.errors import ConfigError
from t2core.training.config import RLConfig
from t2core.training.kl_grid import choose, grid_metrics, parse_kl_grid


def test_choose_by_hand():
    assert choose((0.0, 0.1, 0.2), (0.5, 0.7, 0.6)) == 1
    assert choose((0.3, 0.0, 0.1), (0.7, 0.7, 0.2)) == 0  # equal: the first in the grid's order
    m = grid_metrics((0.0, 0.1), (0.25, 0.5), 1)
    assert m == {"kl_chosen": 0.1, "kl_grid_size": 2.0, "kl_grid_valid[0]": 0.25, "kl_grid_valid[0.1]": 0.5}


@pytest.mark.parametrize("bad", ["0,-0.1", "0.1,0.1", "0,x"])
def test_a_bad_grid_fails_in_one_line(bad):
    with pytest.raises(ConfigError, match="kl_grid") as e:
        parse_kl_grid(bad)
    assert "\n" not in str(e.value)


def test_a_profile_cannot_set_both_a_kl_coef_and_a_grid():
    from t2core.profiles import TrainSlice

    with pytest.raises(ConfigError, match="kl_coef and kl_grid"):
        TrainSlice("gsm8k", (("kl_coef", 0.1),), kl_grid=(0.0, 0.1))


def test_the_grid_trains_one_expert_per_lambda_and_records_the_choice(tiny, monkeypatch):
    from catalog import Catalog
    from catalog.execute import execute
    from t2ops import training as op
    from t2ops.model import ident_of

    rl = RLConfig(task="synthetic_ascii", steps=2, batch_size=4, lr=0.2, temperature=1.0, valid_every=1,
                  valid_limit=8)
    grid = (0.0, 0.5)
    req = op.TrainRequest(rl, kl_grid=grid)
    ident = ident_of(tiny)
    plan = op.OP.plan(req, ident)
    members = [op.OP.plan(op.TrainRequest(RLConfig(**{**rl.__dict__, "kl_coef": lam})), ident) for lam in grid]
    assert [o[1] for o in plan.outputs] == [m.run_id for m in members]  # each λ stored under its own id
    assert plan.run_id not in {m.run_id for m in members}
    assert op.OP.plan(op.TrainRequest(rl, kl_grid=(0.0, 0.2)), ident).run_id != plan.run_id
    assert plan.row.config["kl_grid"] == [0.0, 0.5]

    cat = Catalog()
    out = execute(op.OP, req, tiny, cat)
    valids = [out.metrics[f"kl_grid_valid[{lam:g}]"] for lam in grid]
    assert out.metrics["kl_chosen"] == grid[choose(grid, valids)]
    assert out.metrics["best_valid"] == max(valids)
    # the chosen expert is the λ run's own expert: training that λ alone reuses it
    alone = execute(op.OP, op.TrainRequest(RLConfig(**{**rl.__dict__, "kl_coef": out.metrics["kl_chosen"]})), tiny,
                    cat)
    assert alone.expert_id == out.expert_id and alone.trained.result is None
    again = execute(op.OP, req, tiny, cat)  # recorded: nothing trains
    assert again.reused and again.expert_id == out.expert_id and again.metrics["kl_chosen"] == out.metrics["kl_chosen"]
