"""Model families: the module names every target spec and adapter use come from the family's entry,
found by the model's `model_type` (Llama, Qwen2, Gemma 3), never assumed at the call site."""

from __future__ import annotations

import pytest
import torch

from t2core.models.targets import LLAMA_TARGETS, FamilyTargets, family_names, family_of, find_targets


def _tiny(config_cls, **kw):
    from transformers import AutoModelForCausalLM

    cfg = config_cls(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, **kw)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize("name", ["qwen2", "gemma3_text", "llama"])
def test_each_family_names_the_matrices_of_its_own_architecture(name):
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config

    cls, kw = {"qwen2": (Qwen2Config, {}), "gemma3_text": (Gemma3TextConfig, {"head_dim": 8}),
               "llama": (LlamaConfig, {})}[name]
    model = _tiny(cls, **kw)
    fam = family_of(model)
    assert name in family_names() and model.config.model_type == name
    mlp, attn = find_targets(model, fam, "mlp"), find_targets(model, fam, "attn")
    assert len(mlp) == 2 * 3 and len(attn) == 2 * 4  # gate/up/down and q/k/v/o in each of the 2 blocks
    assert set(find_targets(model, fam, "both")) == set(mlp) | set(attn)


def test_a_family_with_other_names_is_one_entry_and_an_unknown_one_is_one_clear_error():
    from t2core.errors import ConfigError

    class Fused(torch.nn.Module):  # a phi3-like block: one fused qkv and one fused gate/up matrix
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "toy-fused"})()
            self.qkv_proj, self.gate_up_proj = torch.nn.Linear(4, 12), torch.nn.Linear(4, 16)

    m = Fused()
    assert family_of(m) is LLAMA_TARGETS  # nothing registered for it: Llama's names, which do not match
    with pytest.raises(ConfigError, match="register the model family's module names"):
        find_targets(m, family_of(m), "mlp")
    fam = FamilyTargets(mlp=("gate_up_proj",), attn=("qkv_proj",))
    assert list(find_targets(m, fam, "both")) == ["qkv_proj", "gate_up_proj"]  # in model order


def test_loading_sets_the_family_and_ia3_uses_its_names(tiny):
    from t2core.adapters import peft_config
    from t2core.training.ntp import NTPConfig

    assert tiny.model.config.model_type == "llama" and tiny.family is family_of(tiny.model)
    fam = FamilyTargets(mlp=(), attn=(), ia3=("k", "v", "w2"), ia3_feedforward=("w2",))
    cfg = peft_config(NTPConfig(task="gsm8k", method="ia3"), fam)
    assert set(cfg.target_modules) == {"k", "v", "w2"} and set(cfg.feedforward_modules) == {"w2"}
