"""The LoRA baseline at the paper's A.2 settings (issue 34): batch 256 fits by micro-batches, which change
neither the update nor the adapter id."""

import shutil

import pytest

from t2core.errors import ConfigError
from t2core.profiles import get_profile
from t2core.training.ntp import NTPConfig, adapter_id, train_ntp


def test_micro_batches_give_the_same_losses_and_the_same_adapter_id(tiny, data_dir, t2_home):
    kw = dict(task="arc_easy", method="lora", steps=2, batch_size=4, lr=1e-2, train_limit=8, seed=3)
    whole, parts = NTPConfig(**kw), NTPConfig(**kw, micro_batch_size=3)  # 3 + 1: unequal parts
    assert adapter_id("h", whole, {"f": "0"}, "1", "t") == adapter_id("h", parts, {"f": "0"}, "1", "t")
    a = train_ntp(tiny, whole, data_dir)
    shutil.rmtree(t2_home)  # train again, not reuse
    b = train_ntp(tiny, parts, data_dir)
    assert not b.reused and b.adapter_id == a.adapter_id
    assert b.losses[0] == pytest.approx(a.losses[0], rel=1e-5)  # the same batch loss, summed from unequal parts
    assert b.losses[1] == pytest.approx(a.losses[1], rel=1e-3)  # after one Adam step on float-rounded gradients
    with pytest.raises(ConfigError, match="micro_batch_size=0"):
        NTPConfig(task="arc_easy", micro_batch_size=0)


def test_the_paper_profile_trains_lora_as_appendix_a2_says():
    prof = get_profile("paper")
    for bl in prof.baselines:
        if bl.method == "lora":
            cfg = prof.ntp_config(bl)
            assert (cfg.lr, cfg.batch_size, cfg.steps) == (5e-5, 256, 200)
            assert cfg.target_modules == ("q_proj", "v_proj")
