"""The hf sampler's bf16 path: the weight-cast cache changes speed, never results or the model."""

import pytest
import torch

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
