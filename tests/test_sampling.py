"""The hf sampler: the bf16 weight-cast cache changes speed, never results or the model; `choose`
scores candidates exactly as separate unpadded forwards would."""

import pytest
import torch

from t2core.errors import ConfigError
from t2core.sampling import GenerationConfig, make_sampler
from t2core.sampling.hf import bf16_autocast


def test_cached_bf16_autocast_matches_plain_autocast_and_restores_flags(tiny):
    model = tiny.model
    ids = torch.randint(0, 250, (2, 11), generator=torch.Generator().manual_seed(0))
    assert not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = model(ids).logits
        with bf16_autocast(model, torch.device("cpu")):
            cached = model(ids).logits
            cached_again = model(ids).logits  # served from the cast cache
    assert torch.equal(plain, cached) and torch.equal(cached, cached_again)
    assert not any(p.requires_grad for p in model.parameters())  # flags restored
    with pytest.raises(RuntimeError, match="no_grad"):
        with bf16_autocast(model, torch.device("cpu")):
            pass


def test_weights_swapped_between_calls_are_not_served_stale(tiny):
    """The cast cache lives only inside one call, so a materialised expert is always seen."""
    sampler = make_sampler("hf", loaded=tiny)
    conv = [[{"role": "user", "content": "hello"}]]
    cfg = GenerationConfig(max_new_tokens=6, dtype="bfloat16")
    first = sampler.generate(conv, cfg)[0].completion_ids
    mods = [layer.mlp.down_proj for layer in tiny.model.model.layers]
    saved = [m.weight.data for m in mods]
    g = torch.Generator().manual_seed(0)
    try:
        for m, w in zip(mods, saved, strict=True):  # a different model for the next call
            m.weight.data = 50 * torch.randn(w.shape, generator=g)
        swapped = sampler.generate(conv, cfg)[0].completion_ids
    finally:
        for m, w in zip(mods, saved, strict=True):
            m.weight.data = w
    assert swapped != first
    assert sampler.generate(conv, cfg)[0].completion_ids == first


# -- `choose`: picking among candidates by likelihood (choice tasks) ------------------------------

def _convs_and_candidates():
    convs = [[{"role": "user", "content": "Question: which is a fruit?"}],
             [{"role": "user", "content": "Question: a much longer question, so the batch needs left padding"}],
             [{"role": "user", "content": "Question: x"}]]
    cands = [("Answer: apple", "Answer: a rock", "Answer: the colour of a very long thing"),
             ("Answer: yes", "Answer: no"),
             ("Answer: one", "Answer: two", "Answer: three", "Answer: four", "Answer: five")]
    return convs, cands


def _by_hand(loaded, conv, cands) -> torch.Tensor:
    """Each candidate scored on its own, no padding: log softmax over Σ_t log p(c_t | prefix)."""
    from t2core.sampling.hf import render_prompt

    tok = loaded.tokenizer
    p = tok(render_prompt(tok, conv), add_special_tokens=False)["input_ids"]
    totals = []
    for cand in cands:
        c = tok(cand, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(loaded.model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1].float(), -1)
        totals.append(lp[torch.arange(len(c)), torch.tensor(c)].sum())
    return torch.log_softmax(torch.stack(totals), 0)


def test_choose_scores_candidates_like_separate_unpadded_forwards(tiny):
    convs, cands = _convs_and_candidates()
    sampler = make_sampler("hf", loaded=tiny)
    for bs in (1, 3):  # batching and left padding change nothing
        comps = sampler.choose(convs, cands, GenerationConfig(batch_size=bs))
        for conv, cs, comp in zip(convs, cands, comps, strict=True):
            expected = _by_hand(tiny, conv, cs)
            assert comp.choice_logprobs == pytest.approx(expected.tolist(), abs=1e-4)
            assert comp.choice == int(expected.argmax()) and comp.text == cs[comp.choice]
            assert comp.completion_ids == tiny.tokenizer(comp.text, add_special_tokens=False)["input_ids"]


def test_choose_samples_by_seed_and_refuses_bad_candidates(tiny):
    convs, cands = _convs_and_candidates()
    sampler = make_sampler("hf", loaded=tiny)
    cfg = GenerationConfig(temperature=1.0, seed=3)
    picks = [[c.choice for c in sampler.choose(convs * 20, cands * 20, cfg)] for _ in range(2)]
    assert picks[0] == picks[1]  # same seed, same draws
    assert len(set(picks[0][2::3])) > 1  # T = 1 draws, not the argmax every time
    with pytest.raises(ConfigError, match="2 candidate lists for 3 conversations"):
        sampler.choose(convs, cands[:2], cfg)
    with pytest.raises(ConfigError, match="non-empty"):
        sampler.choose(convs[:1], [("Answer: a", "")], cfg)


def test_dummy_choose_and_a_sampler_without_choose():
    from t2core.sampling.base import Completion, Sampler

    convs, cands = _convs_and_candidates()
    dummy = make_sampler("dummy", respond=lambda m: "Answer: no")
    assert [c.choice for c in dummy.choose(convs, cands, GenerationConfig())] == [0, 1, 0]

    class GenerateOnly(Sampler):
        name = "generate-only"

        def generate(self, conversations, cfg, progress=None, svf=None):
            return [Completion("", 0, 0) for _ in conversations]

    with pytest.raises(ConfigError, match="cannot score candidate answers.*'hf'"):
        GenerateOnly().choose(convs, cands, GenerationConfig())
