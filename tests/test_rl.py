"""REINFORCE on SVF: learning happens, KL is computed, crashes resume, bad input is refused."""

import pytest
import torch

import tests.synthetic  # noqa: F401 - registers synthetic_ascii
from t2core.errors import ConfigError, DataError
from t2core.logprobs import kl_per_token, masked_mean_per_seq, pack
from t2core.svd import ensure_svd, load_svd
from t2core.tasks.base import Dataset
from t2core.training.config import RLConfig
from t2core.training.reinforce import ReinforceTrainer


@pytest.fixture(scope="module")
def svd_mlp(tiny):
    return load_svd(ensure_svd(tiny, "mlp"))


def _cfg(**kw):
    base = dict(task="synthetic_ascii", steps=30, batch_size=16, lr=0.2, grad_clip=1.0, temperature=1.0,
                valid_every=10, valid_limit=16)
    return RLConfig(**{**base, **kw})


def _assert_mean_reward_rises(res, by: float = 0.3) -> None:
    rewards = [c.mean_reward for c in res.curve]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + by, rewards


def test_mean_reward_rises_and_z_moves(tiny, svd_mlp):
    trainer = ReinforceTrainer(tiny, svd_mlp, _cfg())
    res = trainer.fit()
    _assert_mean_reward_rises(res)
    # the live policy moved away from z = 1 (the returned one is the best-validation z)
    assert max((trainer.policy.z(n) - 1).abs().max().item() for n in trainer.policy.names) > 1e-2
    assert res.base_valid <= res.best_valid


def test_kl_penalty_is_reported_and_zero_at_init(tiny, svd_mlp):
    res = ReinforceTrainer(tiny, svd_mlp, _cfg(steps=3, kl_coef=0.1, valid_every=100)).fit()
    assert res.curve[0].kl == pytest.approx(0.0, abs=1e-6)  # z = 1 at step 1: π_W' = π_W
    assert res.curve[-1].kl > 0


def test_kl_by_hand():
    p = torch.tensor([[[0.0, 0.0]]])  # uniform
    q = torch.log(torch.tensor([[[0.25, 0.75]]]))
    expected = 0.5 * torch.log(torch.tensor(0.5 / 0.25)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75))
    assert torch.isclose(kl_per_token(p, q)[0, 0], expected, atol=1e-6)
    ids, attn, mask = pack([[1, 2], [3]], [[4, 5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[1, 2, 4, 5, 6], [0, 0, 0, 3, 7]]  # left-padded: completions end together
    assert attn.tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert masked_mean_per_seq(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 4.0]]), mask).tolist() == [2.0, 4.0]


def test_completion_logprobs_match_full_forward(tiny):
    """The last-k shortcut with left padding equals a plain unpadded forward, row by row."""
    from t2core.logprobs import completion_logits, token_logprobs

    prompts, comps = [[5, 6, 7, 8], [9, 10]], [[11, 12], [13, 14, 15]]
    ids, attn, mask = pack(prompts, comps, pad_id=0)
    with torch.no_grad():
        lp = token_logprobs(completion_logits(tiny.model, ids, attn, 3), ids[:, -3:])
        for row, (p, c) in enumerate(zip(prompts, comps, strict=True)):
            full = torch.tensor([p + c])
            ref = torch.log_softmax(tiny.model(full).logits[0, :-1].float(), -1)
            ref = ref[torch.arange(len(p) - 1, len(p) + len(c) - 1), torch.tensor(c)]
            assert torch.allclose(lp[row, 3 - len(c):], ref, atol=1e-4)


def test_token_logprobs_without_grad_are_the_whole_block_s_in_chunks(monkeypatch):
    """Without autograd the log-softmax is taken a few rows at a time (issue 43: no second (B, k, V) block
    beside the logits): the same values, bit for bit, as the whole block's, from fp32 or bf16 logits; with
    autograd, the whole block's, differentiable."""
    import t2core.logprobs as lpmod

    torch.manual_seed(0)
    logits, targets = torch.randn(3, 5, 97) * 4, torch.randint(0, 97, (3, 5))
    whole = torch.gather(torch.log_softmax(logits, -1), 2, targets.unsqueeze(-1)).squeeze(-1)
    monkeypatch.setattr(lpmod, "LOGPROB_CHUNK_ROWS", 4)  # 15 rows: 3 full chunks and a partial one
    with torch.no_grad():
        assert torch.equal(lpmod.token_logprobs(logits, targets), whole)
        half = logits.bfloat16()
        ref = torch.gather(torch.log_softmax(half.float(), -1), 2, targets.unsqueeze(-1)).squeeze(-1)
        assert torch.equal(lpmod.token_logprobs(half, targets), ref)
    x = logits.clone().requires_grad_(True)
    got = lpmod.token_logprobs(x, targets)
    assert torch.equal(got.detach(), whole) and got.requires_grad
    got.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


class _Crash(Exception):
    pass


def test_resume_after_crash_matches_uninterrupted(tiny, svd_mlp, tmp_path):
    cfg = _cfg(steps=8, valid_every=4)
    full = ReinforceTrainer(tiny, svd_mlp, cfg).fit()

    def crash_at_5(point):
        if point.step == 5:
            raise _Crash

    with pytest.raises(_Crash):
        ReinforceTrainer(tiny, svd_mlp, cfg, checkpoint_dir=tmp_path / "ck", on_log=crash_at_5).fit()
    resumed = ReinforceTrainer(tiny, svd_mlp, cfg, checkpoint_dir=tmp_path / "ck").fit()
    assert resumed.resumed_from == 4  # step 5 crashed before its checkpoint
    assert [c.step for c in resumed.curve] == list(range(1, 9))
    assert [c.mean_reward for c in resumed.curve] == [c.mean_reward for c in full.curve]
    for n in full.policy.names:
        assert torch.allclose(resumed.policy.z(n), full.policy.z(n))


def test_bad_config_and_empty_dataset(tiny, svd_mlp, monkeypatch):
    with pytest.raises(ConfigError, match="kl_coef=-0.1"):
        _cfg(kl_coef=-0.1)
    with pytest.raises(ConfigError, match="steps=0"):
        _cfg(steps=0)
    from t2core.tasks import get_task

    task = get_task("synthetic_ascii")
    monkeypatch.setattr(task, "load", lambda split, d: Dataset("synthetic_ascii", split, [], {}, 0))
    with pytest.raises(DataError, match="has no samples"):
        ReinforceTrainer(tiny, svd_mlp, _cfg())


def test_lora_pg_uses_the_same_loop_and_restores_the_model(tiny, svd_mlp):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    trainer = ReinforceTrainer(tiny, svd_mlp, _cfg(method="lora", lr=0.02, steps=20, kl_coef=0.05))
    res = trainer.fit()
    rewards = [c.mean_reward for c in res.curve]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5, rewards
    assert res.policy is None and any("lora_A" in k for k in res.best_state)
    assert res.curve[0].kl == pytest.approx(0.0, abs=1e-6)  # LoRA B starts at 0: π = π_base
    after = tiny.model.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)


# -- choice tasks (output_type "choice"): the policy restricted to the candidates -----------------

def _choice_cfg(**kw):
    return _cfg(**{"task": "synthetic_choice", "lr": 0.05, "steps": 25, "reward_norm": True, **kw})


def test_choice_rollout_learns_the_right_candidate(tiny, svd_mlp):
    trainer = ReinforceTrainer(tiny, svd_mlp, _choice_cfg())
    res = trainer.fit()
    _assert_mean_reward_rises(res)
    assert all(c.tokens > 0 for c in res.curve)
    # the gold candidate's probability on unseen items rose (greedy validation starts at 1.0 here)
    from t2core.sampling import GenerationConfig, make_sampler
    from t2core.svf import materialised

    task, valid = trainer.task, trainer.task.load("valid", None).samples

    def p_gold() -> float:
        comps = make_sampler("hf", loaded=tiny).choose([task.messages(s) for s in valid],
                                                       [task.candidates(s) for s in valid], GenerationConfig())
        return sum(torch.tensor(c.choice_logprobs)[task.gold_candidate(s)].exp().item()
                   for s, c in zip(valid, comps, strict=True)) / len(valid)

    before = p_gold()
    with materialised(tiny.model, svd_mlp, trainer.policy):
        after = p_gold()
    assert after > before + 0.1, (before, after)


def test_choice_rollout_logprobs_match_the_sampler_and_kl_starts_at_zero(tiny, svd_mlp):
    """Training and evaluation score candidates the same way: the rollout's log π(picked) is the
    sampler's normalised log-prob of that candidate (unpadded, one sequence at a time)."""
    from t2core.sampling import GenerationConfig, make_sampler
    from t2core.tasks import get_task
    from t2core.training.choice import choice_rollout

    trainer = ReinforceTrainer(tiny, svd_mlp, _choice_cfg(kl_coef=0.2, batch_size=4))
    task = get_task("synthetic_choice")
    batch = trainer.train.samples[:4]
    ro = choice_rollout(trainer, batch, step=1)
    comps = make_sampler("hf", loaded=tiny).choose([task.messages(s) for s in batch],
                                                   [task.candidates(s) for s in batch],
                                                   GenerationConfig(batch_size=1, temperature=1.0))
    for s, c in zip(batch, comps, strict=True):
        assert sum(torch.tensor(c.choice_logprobs).exp()) == pytest.approx(1.0, abs=1e-5)
        assert c.choice_logprobs == pytest.approx(_restricted_by_hand(tiny, task, s), abs=1e-4)
    logp, kl = ro.terms([0, 1, 2, 3])
    assert kl is not None and kl.abs().max().item() < 1e-6  # z = 1: π_W' = π_W
    assert logp.requires_grad and logp.shape == (4,)
    for lp, s in zip(logp.tolist(), batch, strict=True):
        assert any(abs(lp - x) < 1e-4 for x in _restricted_by_hand(tiny, task, s))
    trainer.adapter.close()


def _restricted_by_hand(loaded, task, sample) -> list[float]:
    """log softmax over candidates of Σ_t log p(token_t | prefix), each sequence on its own."""
    from t2core.sampling.hf import render_prompt

    tok, model = loaded.tokenizer, loaded.model
    p = tok(render_prompt(tok, task.messages(sample)), add_special_tokens=False)["input_ids"]
    totals = []
    for cand in task.candidates(sample):
        c = tok(cand, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + c])).logits[0].float()
        lp = torch.log_softmax(logits[len(p) - 1 : -1], -1)
        totals.append(float(lp[torch.arange(len(c)), torch.tensor(c)].sum()))
    return torch.log_softmax(torch.tensor(totals), 0).tolist()


@pytest.mark.parametrize("task", ["synthetic_ascii", "synthetic_choice"])
def test_micro_batches_give_the_same_update_and_the_same_run_id(tiny, svd_mlp, task):
    """Gradient accumulation over micro-batches is the same REINFORCE update (float rounding aside),
    so `micro_batch_size` is a memory knob: it does not change the run id (a stored expert is reused)."""
    kw = dict(task=task, steps=2, batch_size=6, kl_coef=0.1, reward_norm=True, valid_every=100, valid_limit=2)
    whole = ReinforceTrainer(tiny, svd_mlp, _cfg(**kw))
    parts = ReinforceTrainer(tiny, svd_mlp, _cfg(**kw, micro_batch_size=4))
    assert whole.run_id == parts.run_id
    a, b = whole.fit(), parts.fit()
    for ca, cb in zip(a.curve, b.curve, strict=True):
        assert (ca.mean_reward, ca.tokens) == (cb.mean_reward, cb.tokens)
        assert ca.loss == pytest.approx(cb.loss, abs=1e-5) and ca.kl == pytest.approx(cb.kl, abs=1e-6)
        assert ca.grad_norm == pytest.approx(cb.grad_norm, rel=1e-3)
    for n in whole.policy.names:
        assert torch.allclose(whole.policy.z(n), parts.policy.z(n), atol=1e-5)
    assert max((whole.policy.z(n) - 1).abs().max().item() for n in whole.policy.names) > 1e-3  # it did move
    with pytest.raises(ConfigError, match="micro_batch_size=0"):
        _cfg(micro_batch_size=0)


def test_a_lora_pg_run_id_covers_its_lora(monkeypatch):
    """Another LoRA (rank, alpha, dropout, modules) trained by the same loop is another run; SVF ids
    do not change with it."""
    from dataclasses import replace

    from t2core.training import reinforce
    from t2core.training.ntp import lora_pg_settings

    def ids():
        return [reinforce.train_run_id("h" * 64, RLConfig(task="gsm8k", method=m), "1", {"f": "0" * 64})
                for m in ("lora", "svf")]

    lora, svf = ids()
    monkeypatch.setattr(reinforce, "lora_pg_settings", lambda task, seed: replace(lora_pg_settings(task, seed), rank=8))
    lora8, svf8 = ids()
    assert lora8 != lora and svf8 == svf
