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


def test_the_answer_loss_is_the_models_own_labels_loss_from_fewer_logits(tiny):
    """`answer_loss` makes logits only from the first position that predicts an answer token (issue 43): the
    loss and its gradient are those of the model's `labels=` loss (a prompt of 3 and one of 5 tokens, one
    row padded), and a batch whose answers start late keeps only those positions' logits."""
    import torch

    from t2core.training.ntp import answer_loss

    model = tiny.model
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 100, (2, 9), generator=g)  # (B, T)
    m = torch.ones_like(x)
    m[1, 7:] = 0  # row 1 right-padded
    y = torch.full_like(x, -100)
    y[0, 3:], y[1, 5:7] = x[0, 3:], x[1, 5:7]  # answers after prompts of 3 and 5 tokens
    w = next(p for p in model.parameters() if p.dim() == 2)
    w.requires_grad_(True)
    try:
        ref = model(input_ids=x, attention_mask=m, labels=y).loss
        (g_ref,) = torch.autograd.grad(ref, w)
        got = answer_loss(model, x, m, y)
        (g_got,) = torch.autograd.grad(got, w)
    finally:
        w.requires_grad_(False)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(g_got, g_ref, rtol=1e-5, atol=1e-7)
    seen = []
    hook = model.lm_head.register_forward_hook(lambda mod, i, o: seen.append(o.shape[1]))
    try:
        with torch.no_grad():
            answer_loss(model, x, m, y)
    finally:
        hook.remove()
    assert seen == [9 - 2]  # positions 2..8: position 2 predicts the first answer token (t = 3)
