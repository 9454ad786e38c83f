"""`t2 inspect expert`: what an expert boosts and damps, per block and along the spectrum, and how
alike two experts are (hand-computed values on synthetic vectors; the CLI on a tiny expert file)."""

import pytest
import torch

from t2core.errors import ConfigError
from t2core.inspect_expert import layer_cosines, matrix_stats, profile_by_rank
from tests.conftest import t2_inproc


def _z(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_matrix_stats_by_hand():
    z = {"m.layers.1.mlp.up_proj": _z([1.5] + [1.0] * 8 + [0.5]),  # boosts the top component, damps the last
         "m.layers.0.mlp.up_proj": torch.ones(10)}
    first, second = matrix_stats(z)
    assert (first.layer, second.layer) == (0, 1)  # block order
    assert first.dev_norm == 0 and first.boosted == first.damped == 0
    assert (second.mean, second.min, second.max) == pytest.approx((1.0, 0.5, 1.5))
    assert (second.mean_abs_dev, second.boosted, second.damped) == pytest.approx((0.1, 0.1, 0.1))
    assert second.dev_norm == pytest.approx(0.5 ** 0.5)
    assert (second.head_dev, second.tail_dev) == pytest.approx((0.5, 0.5))  # top / bottom 10% = one value each


def test_the_spectrum_profile_and_the_cosines_by_hand():
    a = {"m.layers.0.mlp.up_proj": _z([1.2, 1.2, 0.8, 0.8]), "m.layers.1.mlp.up_proj": torch.ones(4)}
    prof = profile_by_rank(a, bins=2)["mlp.up_proj"]  # mean over the two blocks of z - 1, in two halves
    assert prof.tolist() == pytest.approx([0.1, -0.1])
    b = {"m.layers.0.mlp.up_proj": _z([0.8, 0.8, 1.2, 1.2]), "m.layers.1.mlp.up_proj": _z([1.1, 1, 1, 1])}
    assert layer_cosines(a, b) == [(0, pytest.approx(-1.0)), (1, None)]  # opposite changes; block 1 unchanged in a
    with pytest.raises(ConfigError, match="different matrices"):
        layer_cosines(a, {"m.layers.0.mlp.up_proj": torch.ones(4)})


def test_inspect_cli_prints_and_plots(tmp_path, t2_home):
    from tests.test_transfer import _random_expert_file

    path, _ = _random_expert_file(tmp_path, "tiny-random")
    out = tmp_path / "e.png"
    res = t2_inproc("inspect", "expert", str(path), "--vs", str(path), "--out", str(out))
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "arc_easy_cloze expert of tiny-random (REINFORCE; targets mlp, 384 values)" in text
    assert text.count("1.000") >= 2  # an expert against itself: cosine 1 in both blocks
    assert out.stat().st_size > 1000
    bad = t2_inproc("inspect", "expert", "svf:0000000000")
    assert bad.returncode == 2 and "matches 0 stored experts" in bad.stderr
