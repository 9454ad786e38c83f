"""The training recipe's options where the paper's text and the released code differ (issue 34):
each is validated, changes the run id, and does what it says."""

import math

import pytest
import torch

import tests.synthetic  # noqa: F401 - registers synthetic_ascii
from t2core.errors import ConfigError
from t2core.ids import identity_fields
from t2core.logprobs import pack
from t2core.svd import ensure_svd, load_svd
from t2core.training.config import RLConfig
from t2core.training.optim import make_optimizer, step_lr
from t2core.training.reinforce import ReinforceTrainer, train_run_id
from t2core.training.rollouts import answer_kl, generation_rollout, reduce_seq


@pytest.fixture(scope="module")
def svd_mlp(tiny):
    return load_svd(ensure_svd(tiny, "mlp"))


@pytest.mark.parametrize(("key", "bad"), [("optimizer", "sgd"), ("kl_direction", "forward"),
                                          ("seq_reduction", "max")])
def test_a_bad_name_fails_in_one_line(key, bad):
    with pytest.raises(ConfigError, match=f"{key}.*{bad}") as e:
        RLConfig(task="gsm8k", **{key: bad})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("key", "other"), [("optimizer", "adamw-cosine"), ("kl_direction", "ref-policy"),
                                            ("seq_reduction", "sum")])
def test_each_option_changes_the_run_id_and_its_old_value_keeps_the_old_id(key, other):
    def rid(cfg):
        return train_run_id("h" * 64, cfg, "1", {"f": "0" * 64})

    legacy = RLConfig(task="gsm8k")
    assert key not in identity_fields(legacy)  # runs stored before the option existed keep their ids
    assert rid(RLConfig(task="gsm8k", **{key: other})) != rid(legacy)


def test_the_cosine_schedule_by_hand():
    # lr_k = lr · ½(1 + cos(π (k−1)/n)), n = 4
    got = [step_lr("adamw-cosine", 2e-3, k, 4) for k in (1, 2, 3, 4)]
    want = [2e-3, 2e-3 * 0.5 * (1 + math.cos(math.pi / 4)), 1e-3, 2e-3 * 0.5 * (1 + math.cos(3 * math.pi / 4))]
    assert got == pytest.approx(want, rel=1e-12)
    assert [step_lr("adam-constant", 2e-3, k, 4) for k in (1, 4)] == [2e-3, 2e-3]
    p = [torch.nn.Parameter(torch.ones(2))]
    assert type(make_optimizer("adamw-cosine", p, 1e-3)) is torch.optim.AdamW
    assert type(make_optimizer("adam-constant", p, 1e-3)) is torch.optim.Adam


def test_the_trainer_follows_the_schedule(tiny, svd_mlp):
    kw = dict(task="synthetic_ascii", steps=3, batch_size=4, lr=0.2, temperature=1.0, valid_every=100, valid_limit=2)
    t = ReinforceTrainer(tiny, svd_mlp, RLConfig(optimizer="adamw-cosine", **kw))
    seen = []
    for k in (1, 2, 3):
        t.step(k)
        seen.append(t.opt.param_groups[0]["lr"])
    t.adapter.close()
    assert type(t.opt) is torch.optim.AdamW
    assert seen == pytest.approx([0.2, 0.2 * 0.5 * (1 + math.cos(math.pi / 3)), 0.2 * 0.5 * (1 + math.cos(2 * math.pi / 3))])


def test_sum_and_token_mean_by_hand():
    _, _, mask = pack([[1], [2]], [[3, 4, 5], [6]], pad_id=0)  # mask [[1,1,1],[0,0,1]]
    x = torch.tensor([[-1.0, -2.0, -3.0], [9.0, 9.0, -0.5]])
    assert reduce_seq(x, mask, "sum").tolist() == [-6.0, -0.5]
    assert reduce_seq(x, mask, "token-mean").tolist() == [-2.0, -0.5]


def test_the_kl_direction_by_hand():
    p = torch.tensor([[[0.0, 0.0]]])  # the policy: uniform
    q = torch.log(torch.tensor([[[0.25, 0.75]]]))  # the base
    policy_ref = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # KL(π_W' ‖ π_W), Eq. 1
    ref_policy = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)  # KL(π_W ‖ π_W'), released code
    assert answer_kl(p, q, "policy-ref")[0, 0].item() == pytest.approx(policy_ref, abs=1e-6)
    assert answer_kl(p, q, "ref-policy")[0, 0].item() == pytest.approx(ref_policy, abs=1e-6)


def test_a_rollout_sums_or_averages_the_answer_log_probs(tiny, svd_mlp):
    """The same answers (same seed, same z) scored both ways: the sum is the mean times the answer's tokens."""
    kw = dict(task="synthetic_ascii", steps=1, batch_size=4, temperature=1.0, max_new_tokens=4, valid_limit=2,
              kl_coef=0.1)
    out = {}
    for how in ("sum", "token-mean"):
        t = ReinforceTrainer(tiny, svd_mlp, RLConfig(seq_reduction=how, **kw))
        ro = generation_rollout(t, t.train.samples[:4], 1)
        logp, kl = ro.terms([0, 1, 2, 3])
        out[how] = (logp.detach(), kl.detach(), ro.tokens)
        t.adapter.close()
    (s, ks, n), (m, km, n2) = out["sum"], out["token-mean"]
    assert n == n2
    assert not torch.allclose(s, m)
    lengths = s / m
    assert torch.allclose(lengths, lengths.round(), atol=1e-4) and lengths.sum().round() == n
    assert torch.allclose(ks, km * lengths, atol=1e-6)
