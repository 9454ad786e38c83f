"""The paper's CEM recipe (issue 34): ties in accuracy on a generated task broken by the mean token
log-likelihood of each candidate's own correct answers; the light search's own generations."""

import pytest
import torch

import tests.synthetic  # noqa: F401 - registers synthetic_ascii
from t2core.adapt import cem
from t2core.adapt.cem import CEMConfig
from t2core.adapt.fewshot import FewShotConfig, ShotScorer, answer_loglik, few_shot_run_id
from t2core.errors import ConfigError
from t2core.sampling import make_sampler
from t2core.sampling.base import GenerationConfig
from t2core.svf.mixture import mix_weights
from t2core.tasks import get_task


def _bank(tiny):
    from tests.conftest import random_experts

    svd, _, bank = random_experts(tiny, 3, scale=0.5, seed=20)
    return svd, bank


def test_a_bad_tie_break_fails_in_one_line_and_the_option_changes_the_search_id():
    with pytest.raises(ConfigError, match="tie_break='first'") as e:
        FewShotConfig(task="gsm8k", tie_break="first")
    assert "\n" not in str(e.value)
    from t2core.tasks.base import Dataset

    shots = Dataset("gsm8k", "train", [], {"f": "0" * 64}, 0)
    ids = {t: few_shot_run_id("h", ["svf:a"], FewShotConfig(task="gsm8k", tie_break=t), "1", shots)
           for t in ("none", "loglik")}
    assert ids["none"] != ids["loglik"]


def test_cem_keeps_the_higher_likelihood_candidate_among_equal_accuracies():
    cfg = CEMConfig(population=4, elite_ratio=0.25)
    state = cem.start(cfg, 3)
    pop = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0]])
    state = cem.update(cfg, state, pop, [(0.5, -2.0), (0.5, -0.7), (0.25, -0.1), (0.5, 0.0)])
    assert state.best == (0.5, 0.5, 0.0) and state.best_fitness == (0.5, 0.0)  # 0.0 > -0.7 > -2.0 at 0.5


def _by_hand(model, weights, svd, outs, correct) -> float:
    """Each correct answer scored alone (no padding), its token log-probs averaged, then over the answers."""
    from t2core.svf import materialised_scales

    per = []
    with torch.no_grad(), materialised_scales(model, svd, weights):
        for o, ok in zip(outs, correct, strict=True):
            if not ok:
                continue
            p, c = o.prompt_ids, o.completion_ids
            lp = torch.log_softmax(model(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
            per.append(float(lp[torch.arange(len(p) - 1, len(p) + len(c) - 1), torch.tensor(c)].mean()))
    return sum(per) / len(per)


def test_the_tie_break_is_the_mean_token_loglik_of_the_correct_answers(tiny):
    svd, bank = _bank(tiny)
    task = get_task("synthetic_ascii")
    shots = task.load("train", None).limit(6)
    smp = make_sampler("hf", loaded=tiny)
    alpha = torch.tensor([0.2, 0.5, 0.3])
    w = mix_weights(bank, alpha)
    from t2core.svf import materialised_scales

    gen = GenerationConfig(max_new_tokens=3, batch_size=8, temperature=1.0, seed=1)
    with materialised_scales(tiny.model, svd, w):
        outs = smp.generate([task.messages(s) for s in shots.samples], gen)
    correct = [task.score(s, o.text).correct for s, o in zip(shots.samples, outs, strict=True)]
    assert any(correct) and not all(correct)  # a mixed batch: the wrong answers must not count
    assert answer_loglik(tiny.model, svd, w, outs, correct) == pytest.approx(
        _by_hand(tiny.model, w, svd, outs, correct), abs=1e-4)
    assert answer_loglik(tiny.model, svd, w, outs, [False] * len(outs)) == 0.0


def test_the_scorer_breaks_ties_on_a_generated_task_only_when_asked(tiny):
    svd, bank = _bank(tiny)
    task = get_task("synthetic_ascii")
    shots = task.load("train", None).limit(4)
    pop = torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    out = {}
    for tb in ("none", "loglik"):
        cfg = FewShotConfig(task="synthetic_ascii", shots=4, max_new_tokens=3, tie_break=tb,
                            cem=CEMConfig(population=2, elite_ratio=0.5))
        scorer = ShotScorer(make_sampler("hf", loaded=tiny), tiny.model, svd, bank, task, shots, cfg)
        out[tb] = scorer.batched(pop), scorer.one_at_a_time(pop)
    (nb, na), (lb, la) = out["none"], out["loglik"]
    assert [f[1] for f in nb] == [f[1] for f in na] == [0.0, 0.0] and [f[0] for f in lb] == [f[0] for f in nb]
    assert all(f[1] < 0 for f, g in zip(lb, nb, strict=True) if g[0] > 0)  # a log-likelihood where any is correct
    assert max(abs(a[1] - b[1]) for a, b in zip(lb, la, strict=True)) < 1e-4  # both paths agree
