"""Few-shot adaptation (paper §3.3): CEM on hand-made fitness functions, mixtures per expert and per
layer, the population scored in one batch equal to one candidate at a time, shots never from test."""

import pytest
import torch

from t2core.adapt import cem
from t2core.adapt.cem import CEMConfig, CEMState
from t2core.adapt.fewshot import FewShotConfig, ShotScorer, pick_shots
from t2core.errors import ConfigError, DataError
from t2core.sampling import make_sampler
from t2core.svf.mixture import mix_scales, mix_weights, mixture_policy
from t2core.tasks import get_task


def _target_fitness(target):
    """Accuracy-like steps (ties) plus a smooth likelihood that breaks them: best at `target`."""
    def score(pop):
        d = (pop - target).abs().reshape(pop.shape[0], -1).sum(1)
        return [(float((dd < 0.3).float()), float(-dd)) for dd in d]
    return score


def test_cem_finds_the_best_mixture_and_bounds_it():
    cfg = CEMConfig(population=16, elite_ratio=0.25, generations=60, patience=15, seed=3)
    target = torch.tensor([0.9, 0.1, 0.0])
    state = cem.search(cfg, cem.start(cfg, 3), _target_fitness(target))
    assert state.done in ("generations", "patience", "converged")
    best = state.alpha()
    assert best.shape == (3,) and (best - target).abs().max() < 0.1, best
    assert best.min() >= 0 and best.max() <= 1  # α bounded to [0, 1] (the target's 0 is on the bound)
    assert state.best_fitness[0] == 1.0
    assert [h["generation"] for h in state.history] == list(range(1, state.generation + 1))
    assert all(a["best"] <= b["best"] for a, b in zip(state.history, state.history[1:], strict=False))  # monotone


def test_cem_normalises_per_layer_and_scores_its_starting_point():
    cfg = CEMConfig(population=4, elite_ratio=0.5, normalise=True, per_layer=True, generations=1)
    st = cem.start(cfg, 3, n_layers=2)
    assert st.shape == (3, 2) and st.mean == (1 / 3,) * 6
    pop = cem.population(cfg, st)
    assert pop.shape == (4, 3, 2) and torch.allclose(pop.sum(1), torch.ones(4, 2))  # each layer's α sums to 1
    assert torch.allclose(pop[0], torch.full((3, 2), 1 / 3))  # generation 0 scores the mean itself


def test_a_resumed_search_draws_what_the_uninterrupted_one_draws():
    cfg = CEMConfig(population=8, generations=12, patience=50, seed=1)
    score = _target_fitness(torch.tensor([0.2, 0.7]))
    straight = cem.search(cfg, cem.start(cfg, 2), score)
    saved = []
    cem.search(CEMConfig(**{**cfg.__dict__, "generations": 5}), cem.start(cfg, 2), score, saved.append)
    resumed = CEMState.from_json(saved[-1].to_json())  # a checkpoint after generation 5
    resumed = cem.search(cfg, CEMState(**{**resumed.__dict__, "done": ""}), score)

    def untimed(st: CEMState) -> CEMState:  # the generations' wall times differ; nothing else may
        assert all(h["seconds"] >= 0 for h in st.history)
        return CEMState(**{**st.__dict__, "history": tuple({k: v for k, v in h.items() if k != "seconds"}
                                                           for h in st.history)})

    assert untimed(resumed) == untimed(straight)


def test_cem_config_refuses_what_cannot_run():
    with pytest.raises(ConfigError, match="population"):
        CEMConfig(population=1)
    with pytest.raises(ConfigError, match="elite_ratio"):
        CEMConfig(elite_ratio=1.0)
    with pytest.raises(ConfigError, match="fitness values"):
        cem.update(CEMConfig(), cem.start(CEMConfig(), 2), torch.zeros(32, 2), [(0.0, 0.0)])


def test_shots_never_come_from_test(data_dir):
    with pytest.raises(ConfigError, match="never test"):
        FewShotConfig(task="arc_challenge_cloze", split="test")
    with pytest.raises(DataError, match="only test"):
        FewShotConfig(task="humaneval")
    with pytest.raises(DataError, match="--shot-split train"):
        FewShotConfig(task="math", split="valid")
    shots = pick_shots(FewShotConfig(task="arc_challenge_cloze", shots=5), data_dir)
    test_ids = {s.id for s in get_task("arc_challenge_cloze").load("test", data_dir).samples}
    train_ids = {s.id for s in get_task("arc_challenge_cloze").load("train", data_dir).samples}
    assert len(shots.samples) == 5 and {s.id for s in shots.samples} <= train_ids - test_ids
    again = pick_shots(FewShotConfig(task="arc_challenge_cloze", shots=5), data_dir)
    other = pick_shots(FewShotConfig(task="arc_challenge_cloze", shots=5, cem=CEMConfig(seed=1)), data_dir)
    assert [s.id for s in again.samples] == [s.id for s in shots.samples] != [s.id for s in other.samples]


def _bank(tiny, k=3):
    from tests.conftest import random_experts

    svd, _, bank = random_experts(tiny, k, scale=0.5, seed=20)
    return svd, bank


def test_mixtures_per_expert_and_per_layer(tiny):
    svd, bank = _bank(tiny)
    assert len(bank.layers) == tiny.model.config.num_hidden_layers
    a = torch.tensor([0.5, 0.3, 0.2])
    for name, sc in bank.scales.items():
        assert torch.allclose(mix_scales(bank, a)[name], 0.5 * sc[0] + 0.3 * sc[1] + 0.2 * sc[2])
    per_layer = a[:, None].repeat(1, len(bank.layers))
    per_layer[:, 0] = torch.tensor([0.0, 0.0, 1.0])  # layer 0 takes expert 2 only
    mixed = mix_scales(bank, per_layer)
    for name, sc in bank.scales.items():
        want = sc[2] if bank.layer_of(name) == 0 else mix_scales(bank, a)[name]
        assert torch.allclose(mixed[name], want), name
    pol = mixture_policy(bank, a, "mlp")
    assert pol.cfg.param == "direct" and all(torch.allclose(pol.z(n), v) for n, v in mix_scales(bank, a).items())
    with pytest.raises(ConfigError, match="mixing coefficients"):
        mix_scales(bank, torch.ones(2))
    assert mix_weights(bank, a).base_weights_hash == tiny.weights_hash


@pytest.mark.parametrize("task, per_layer", [("arc_challenge_cloze", False), ("arc_challenge_cloze", True),
                                             ("gsm8k", False)])
def test_the_population_in_one_batch_scores_as_one_at_a_time(tiny, data_dir, task, per_layer):
    svd, bank = _bank(tiny)
    cfg = FewShotConfig(task=task, shots=3, cem=CEMConfig(population=4, per_layer=per_layer), batch_size=16,
                        max_new_tokens=6)
    shots = pick_shots(cfg, data_dir)
    scorer = ShotScorer(make_sampler("hf", loaded=tiny), tiny.model, svd, bank, get_task(task), shots, cfg)
    pop = cem.population(cfg.cem, cem.start(cfg.cem, bank.k, len(bank.layers)))
    pop[1] = 0.0 * pop[1]  # z' = 0 everywhere: a very different model
    together, alone = scorer.batched(pop), scorer.one_at_a_time(pop)
    assert [f[0] for f in together] == [f[0] for f in alone]
    assert max(abs(a[1] - b[1]) for a, b in zip(together, alone, strict=True)) < 1e-4
    if task != "gsm8k":
        assert together[1][1] != together[0][1]  # the candidates were scored with their own mixtures
    with pytest.raises(ConfigError, match="cannot give each conversation its own experts"):
        ShotScorer(make_sampler("dummy"), tiny.model, svd, bank, get_task(task), shots, cfg).batched(pop)


def test_a_lora_is_picked_by_its_score_on_the_shots_then_likelihood_then_id():
    from t2core.adapt.pick import pick_best

    assert pick_best({"lora:b": (0.5, -2.0), "lora:a": (0.4, -0.1), "lora-pg:c": (0.5, -1.0)}) == "lora-pg:c"
    assert pick_best({"lora:b": (0.5, -1.0), "lora:a": (0.5, -1.0)}) == "lora:a"  # exact tie: smallest id
