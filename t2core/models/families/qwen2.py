"""Qwen2 (Qwen2.5, Qwen2.5-Coder): Llama's module names; q, k and v carry a bias, which SVF leaves as it is."""

from t2core.models.targets import FamilyTargets, register_family

register_family("qwen2", FamilyTargets(
    mlp=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    attn=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")))
